"""The published contracts: OpenAPI, AsyncAPI, and the checks that hold code to them."""
