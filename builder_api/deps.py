"""The parameter types handlers declare: the runtime, the caller and path parts (Litestar
2.25's explicit style, so nothing is inferred from a parameter's name)."""

from __future__ import annotations

from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from builder_api.auth import Caller
from runtime.api import Runtime

Rt = NamedDependency[Runtime]
Who = NamedDependency[Caller]
PathStr = FromPath[str]
PathInt = FromPath[int]
Locale = Annotated[
    str | None, QueryParameter(required=False, max_length=20, description="e.g. `en`, `zh`.")
]
