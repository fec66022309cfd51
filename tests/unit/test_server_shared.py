"""feeds.deliver.server_shared: connections read the factory's options from one shared class.

Built with daphne's own factory and autobahn's own protocol: the test is that
autobahn's copying loop (``_connectionMade``) finds every option already there
and that each reads the same value as the factory's.
"""

from __future__ import annotations

from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from feeds.deliver.server_shared import share_options


def factory() -> WebSocketFactory:
    made = WebSocketFactory(object, server="daphne")
    made.setProtocolOptions(autoPingInterval=20, autoPingTimeout=30, openHandshakeTimeout=5)
    return made


def copy_like_autobahn(protocol: WebSocketProtocol) -> list[str]:
    """What autobahn's ``_connectionMade`` copies into the instance: the names it set."""
    copied = []
    for name in protocol.CONFIG_ATTRS:
        if not hasattr(protocol, name):
            setattr(protocol, name, getattr(protocol.factory, name))
            copied.append(name)
    return copied


def test_after_the_first_connection_none_copies_the_options():
    f = factory()
    first = f.buildProtocol(None)
    assert len(copy_like_autobahn(first)) == len(first.CONFIG_ATTRS)
    assert share_options(first)
    later = f.buildProtocol(None)
    assert isinstance(later, WebSocketProtocol)
    assert copy_like_autobahn(later) == []
    assert not set(later.CONFIG_ATTRS) & set(vars(later))
    for name in later.CONFIG_ATTRS:
        assert getattr(later, name) == getattr(f, name)
    assert later.autoPingInterval == 20
    assert later.perMessageCompressionAccept([]) is None  # a function stays unbound
    assert share_options(later)  # once per factory
    assert type(f.buildProtocol(None)) is type(later)


def test_an_option_set_on_one_connection_stays_its_own():
    f = factory()
    share_options(f.buildProtocol(None))
    one, other = f.buildProtocol(None), f.buildProtocol(None)
    one.perMessageCompressionAccept = lambda offers: "mine"
    assert one.perMessageCompressionAccept([]) == "mine"
    assert other.perMessageCompressionAccept([]) is None


def test_anything_unexpected_leaves_the_factory_as_it_is():
    class Plain:  # a protocol class without autobahn's option list
        pass

    class Factory:
        protocol = Plain

    stray = Plain()
    assert not share_options(stray)  # no factory at all
    stray.factory = Factory()
    assert not share_options(stray)
    assert stray.factory.protocol is Plain


def test_the_options_are_listed_for_the_debug_log_without_pretty_printing():
    import autobahn.websocket.protocol as autobahn_protocol

    f = factory()
    share_options(f.buildProtocol(None))
    listing = [("autoPingInterval", 20, "WebSocketServerProtocol")] * 29
    assert autobahn_protocol.pformat(listing) == repr(listing)  # one line, the same values
    assert "\n" not in autobahn_protocol.pformat(listing)

