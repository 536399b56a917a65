"""What every section of the site file is built from: the strict base model, ids, paths and days.

Every model forbids unknown keys and is strict (a TOML string is never silently a number); only
paths and days convert, because TOML has no type for them. A relative path is relative to the
config file's folder, which ``config.load`` passes in the validation context.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# ASCII digits only: \d would also match other scripts' digits, which no frame can carry.
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
# TOML has no path type: a path is a string, so these fields alone convert (everything else is strict),
# relative to the config file's folder.
FilePath = Annotated[Path, Field(strict=False), BeforeValidator(lambda v, info: _resolve(v, info))]
# A TOML date (2026-11-03), or the same written as a string.
Day = Annotated[date, Field(strict=False)]


class Strict(BaseModel):
    # NaN and infinity are typos in a config: a scale of nan would silence a meter for ever.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False, strict=True)


def _resolve(value: Any, info: ValidationInfo) -> Any:
    """A path relative to the config file's folder (passed in the validation context)."""
    if not isinstance(value, str):
        return value  # not a path: leave the type error to pydantic
    base = (info.context or {}).get("base_dir", Path.cwd())
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        raise ValueError(f"{value!r}: cannot expand the ~ (no such user)") from None
    return path if path.is_absolute() else (base / path)
