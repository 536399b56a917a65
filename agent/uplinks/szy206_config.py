"""``[uplink.szy206]``: the agent as an SZY206 site terminal reporting to a central station over TCP."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..config_types import Strict


class Szy206UplinkConfig(Strict):
    """The agent as an SZY206 site terminal reporting to a central station over TCP."""

    host: str = Field(min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)]
    division: Annotated[str, Field(pattern=r"^[0-9]{6}$")]  # administrative division code, GB/T 2260
    station: Annotated[int, Field(ge=1, le=60000)]  # this site's station number
    password: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None  # PW key1 + key2, checked on 11H
    time_label: Literal["szy206", "sl427", "none"] = "szy206"  # 5 bytes, 7 bytes, or none
    utc_offset_hours: Annotated[float, Field(ge=-12, le=14)] = 8.0
    report_interval: Annotated[int, Field(ge=1, le=86400)] = 300
    keepalive: Annotated[int, Field(ge=0, le=3600)] = 60  # 0: no keep-alive frames
    confirm_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=3)] = 3
    tp_delay_min: Annotated[int, Field(ge=0, le=255)] = 10
    backfill: bool = True  # self-report missed slots after a reconnection, oldest first
    backfill_pace: Annotated[float, Field(ge=0, le=3600)] = 1.0  # seconds between backfilled reports
    trust_station_time: bool = False

    @property
    def tp_len(self) -> int:
        return {"szy206": 5, "sl427": 7, "none": 0}[self.time_label]

    @model_validator(mode="after")
    def _backfill_needs_a_time_label(self) -> Szy206UplinkConfig:
        if self.backfill and self.time_label == "none":
            # Without a time label a backfilled report looks exactly like a live one to the station.
            raise ValueError(
                "backfill needs a time label to say which slot a late report is for: set "
                "time_label, or backfill = false"
            )
        return self
