"""Pydantic models in the OpenAPI document as strict as they validate.

Litestar's pydantic plugin leaves out `extra="forbid"`, so the document let clients send
keys every request body refuses. This plugin adds `additionalProperties: false` to the
schema of every model that forbids extra keys.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Schema
from litestar.plugins.pydantic import PydanticSchemaPlugin
from litestar.typing import FieldDefinition


class StrictModelSchemaPlugin(PydanticSchemaPlugin):
    """Litestar's pydantic schema plugin, plus `additionalProperties: false` where due."""

    @classmethod
    def for_pydantic_model(cls, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().for_pydantic_model(field_definition, schema_creator)
        config = getattr(field_definition.annotation, "model_config", {})
        if config.get("extra") == "forbid":
            schema.additional_properties = False
        return schema
