"""Connectors: where events come from (``.from``) and go to (``.to``)."""
