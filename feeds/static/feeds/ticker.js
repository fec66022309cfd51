// Entry point of the ticker page (templates/feeds/ticker.html). The modules:
//
//   connection.js  socket lifecycle: reconnect with backoff and jitter, liveness watchdog
//   frames.js      what the page needs of the wire contract: frames, close codes, symbols
//   watchlist.js   the symbols shown; the list a browser kept before, moved up once
//   lists.js       the user's named lists on the server: followed live, saved, picked
//   book.js        the newest quote per symbol, session open, halts, seq gaps, history
//   table.js       the watchlist rows; repainted once per animation frame
//   chart.js       the larger chart of the selected row: one-minute candles on a canvas
//   spark.js       the rows' sparklines (SVG points); canvas sizing and colours for chart.js
//   search.js      the add box with suggestions from the REST API
//   status.js      messages/s, round-trip time, symbols subscribed
//   badge.js       the connection state in the top bar
//   app.js         wires them together and speaks the protocol's requests

import { TickerApp } from "./app.js";

const root = document.getElementById("ticker");
if (root) new TickerApp(root).start();
