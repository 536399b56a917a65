"""Element identifiers of SL651-2014 (appendix, 要素标识符) and the two configuration tables.

An element is ``identifier, data definition, value``. The table gives for each identifier its
ASCII mnemonic (what ASCII frames write instead of the byte), its name and unit, and its
standard data type ``N(digits, decimals)``, from which :func:`default_definition` makes the data
definition byte: high five bits the length in bytes, low three bits the decimal places.

Names here are the standard's; an identifier without a name (a province's ``FFxx``) still
decodes, from its data definition. Functions 40H/41H carry the basic configuration table and
42H/43H the running parameters under the same identifier bytes with other meanings:
:func:`element_name` takes the function into account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One identifier: mnemonic, name, unit and standard type N(digits, decimals)."""

    code: str
    name: str
    unit: str
    digits: int
    decimals: int

    @property
    def label(self) -> str:
        """What the JSON view shows as ``name``: mnemonic, name, unit."""
        return f"{self.code} {self.name} {self.unit}".rstrip()


STATION_ID = 0xF1  # F1F1: the station address
OBSERVED_ID = 0xF0  # F0F0: the observation time
MANUAL_ID = 0xF2  # F2F2: manually entered data (ASCII text)
PICTURE_ID = 0xF3  # F3F3: picture (JPEG bytes)
RAIN_5MIN_ID = 0xF4  # 12 five-minute rainfalls of an hour, one HEX byte each (0.1 mm)
LEVELS_5MIN_IDS = range(0xF5, 0xFD)  # 12 five-minute relative levels, two HEX bytes each (0.01 m)
STEP_ID = 0x04  # DRxnn: the time step of a series (day, hour, minute)
STATUS_ID = 0x45  # ZT: status and alarm word, 4 HEX bytes
GUIDE = 0xFF  # FFxx: a two-byte identifier follows

SERIES_SIZES: Final = {RAIN_5MIN_ID: (12, 1, 1)} | {i: (12, 2, 2) for i in LEVELS_5MIN_IDS}
"""Fixed-size series elements: (values, bytes per value, decimals), whatever their definition byte."""


def _n(code: str, name: str, unit: str, digits: int, decimals: int = 0) -> ElementInfo:
    return ElementInfo(code, name, unit, digits, decimals)


ELEMENTS: Final[dict[int, ElementInfo]] = {
    0xF0: _n("TT", "观测时间", "", 10),
    0xF1: _n("ST", "测站编码", "", 10),
    0xF2: _n("RGZS", "人工置数", "", 0),
    0xF3: _n("PIC", "图片信息", "", 0),
    0xF4: _n("DRP", "1小时内每5分钟时段雨量", "mm", 0, 1),
    **{0xF5 + i: _n(f"DRZ{i + 1}", f"1小时内5分钟间隔相对水位{i + 1}", "m", 0, 2) for i in range(8)},
    0xFD: _n("DATA", "流速批量数据传输", "", 0),
    0x01: _n("AC", "断面面积", "m2", 8, 2),
    0x02: _n("AI", "瞬时气温", "℃", 3, 1),
    0x03: _n("C", "瞬时水温", "℃", 3, 1),
    0x04: _n("DRxnn", "时间步长码", "", 6),
    0x05: _n("DT", "时段长", "HH.NN", 5, 2),
    0x06: _n("ED", "日蒸发量", "mm", 5, 1),
    0x07: _n("EJ", "当前蒸发", "mm", 5, 1),
    0x08: _n("FL", "气压", "hPa", 5),
    0x09: _n("GH", "闸坝、水库闸门开启高度", "m", 5, 2),
    0x0A: _n("GN", "输水设备、闸门(组)编号", "", 3),
    0x0B: _n("GS", "输水设备类别", "", 1),
    0x0C: _n("GT", "水库、闸坝闸门开启孔数", "", 3),
    0x0D: _n("GTP", "地温", "℃", 3, 1),
    0x0E: _n("H", "地下水瞬时埋深", "m", 6, 2),
    0x0F: _n("HW", "波浪高度", "m", 5, 2),
    **{
        0x10 + i: _n(f"M{depth}", f"{depth}厘米处土壤含水量", "%", 4, 1)
        for i, depth in enumerate((10, 20, 30, 40, 50, 60, 80, 100))
    },
    0x18: _n("MST", "湿度", "%", 4, 1),
    0x19: _n("NS", "开机台数", "", 3),
    0x1A: _n("P1", "1小时时段降水量", "mm", 5, 1),
    0x1B: _n("P2", "2小时时段降水量", "mm", 5, 1),
    0x1C: _n("P3", "3小时时段降水量", "mm", 5, 1),
    0x1D: _n("P6", "6小时时段降水量", "mm", 5, 1),
    0x1E: _n("P12", "12小时时段降水量", "mm", 5, 1),
    0x1F: _n("PD", "日降水量", "mm", 5, 1),
    0x20: _n("PJ", "当前降水量", "mm", 5, 1),
    0x21: _n("PN01", "1分钟时段降水量", "mm", 5, 1),
    0x22: _n("PN05", "5分钟时段降水量", "mm", 5, 1),
    0x23: _n("PN10", "10分钟时段降水量", "mm", 5, 1),
    0x24: _n("PN30", "30分钟时段降水量", "mm", 5, 1),
    0x25: _n("PR", "暴雨量", "mm", 5, 1),
    0x26: _n("PT", "降水量累计值", "mm", 6, 1),
    0x27: _n("Q", "瞬时流量", "m3/s", 9, 3),
    **{0x28 + i: _n(f"Q{i + 1}", f"取(排)水口流量{i + 1}", "m3/s", 9, 3) for i in range(8)},
    0x30: _n("QA", "总出库流量、过闸总流量", "m3/s", 9, 3),
    0x31: _n("QZ", "输水设备流量、过闸(组)流量", "m3/s", 9, 3),
    0x32: _n("SW", "输沙量", "万吨", 11, 3),
    0x33: _n("UC", "风向", "", 2),
    0x34: _n("UE", "风力(级)", "", 2),
    0x35: _n("US", "风速", "m/s", 4, 1),
    0x36: _n("VA", "断面平均流速", "m/s", 5, 3),
    0x37: _n("VJ", "当前瞬时流速", "m/s", 5, 3),
    0x38: _n("VT", "电源电压", "V", 4, 2),
    0x39: _n("Z", "瞬时河道水位、潮位", "m", 7, 3),
    0x3A: _n("ZB", "库(闸、站)下水位", "m", 7, 3),
    0x3B: _n("ZU", "库(闸、站)上水位", "m", 7, 3),
    **{0x3C + i: _n(f"Z{i + 1}", f"取(排)水口水位{i + 1}", "m", 7, 3) for i in range(8)},
    0x44: _n("SQ", "含沙量", "kg/m3", 9, 3),
    0x45: _n("ZT", "遥测站状态及报警信息", "", 8),
    0x46: _n("PH", "pH值", "", 4, 2),
    0x47: _n("DO", "溶解氧", "mg/L", 4, 1),
    0x48: _n("COND", "电导率", "μS/cm", 5),
    0x49: _n("TURB", "浊度", "度", 3),
    0x4A: _n("CODMN", "高锰酸盐指数", "mg/L", 4, 1),
    0x4B: _n("REDOX", "氧化还原电位", "mV", 5, 1),
    0x4C: _n("NH4N", "氨氮", "mg/L", 6, 2),
    0x4D: _n("TP", "总磷", "mg/L", 5, 3),
    0x4E: _n("TN", "总氮", "mg/L", 5, 2),
    0x4F: _n("TOC", "总有机碳", "mg/L", 4, 2),
    0x50: _n("CU", "铜", "mg/L", 7, 4),
    0x51: _n("ZN", "锌", "mg/L", 6, 4),
    0x52: _n("SE", "硒", "mg/L", 7, 5),
    0x53: _n("AS", "砷", "mg/L", 7, 5),
    0x54: _n("THG", "总汞", "mg/L", 7, 5),
    0x55: _n("CD", "镉", "mg/L", 7, 5),
    0x56: _n("PB", "铅", "mg/L", 7, 5),
    0x57: _n("CHLA", "叶绿素a", "mg/L", 4, 2),
    **{0x58 + i: _n(f"WP{i + 1}", f"水压{i + 1}", "kPa", 6, 2) for i in range(8)},
    **{0x60 + i: _n(f"SYL{i + 1}", f"水表{i + 1}剩余水量", "m3", 11, 3) for i in range(8)},
    **{0x68 + i: _n(f"SBL{i + 1}", f"水表{i + 1}每小时水量", "m3", 11, 3) for i in range(8)},
    0x70: _n("VTA", "交流A相电压", "V", 4, 1),
    0x71: _n("VTB", "交流B相电压", "V", 4, 1),
    0x72: _n("VTC", "交流C相电压", "V", 4, 1),
    0x73: _n("VIA", "交流A相电流", "A", 4, 1),
    0x74: _n("VIB", "交流B相电流", "A", 4, 1),
    0x75: _n("VIC", "交流C相电流", "A", 4, 1),
}

BASIC_CONFIG: Final[dict[int, str]] = {
    0x01: "中心站地址",
    0x02: "遥测站地址",
    0x03: "密码",
    0x04: "中心站1主信道类型及地址",
    0x05: "中心站1备用信道类型及地址",
    0x06: "中心站2主信道类型及地址",
    0x07: "中心站2备用信道类型及地址",
    0x08: "中心站3主信道类型及地址",
    0x09: "中心站3备用信道类型及地址",
    0x0A: "中心站4主信道类型及地址",
    0x0B: "中心站4备用信道类型及地址",
    0x0C: "工作方式",
    0x0D: "遥测站采集要素设置",
    0x0E: "中继站(集合转发站)服务地址范围",
    0x0F: "遥测站通信设备识别号",
}
"""Basic configuration (functions 40H, 41H): values are kept as hex digits, not numbers."""

PARAMETERS: Final[dict[int, str]] = {
    0x20: "定时报时间间隔",
    0x21: "加报时间间隔",
    0x22: "降水量日起始时间",
    0x23: "采样间隔",
    0x24: "水位数据存储间隔",
    0x25: "雨量计分辨力",
    0x26: "水位计分辨力",
    0x27: "雨量加报阈值",
    **{0x28 + i: f"水位基值{i + 1}" for i in range(8)},
    **{0x30 + i: f"水位修正基值{i + 1}" for i in range(8)},
    **{0x38 + i: f"加报水位{i + 1}" for i in range(8)},
    0x40: "加报水位以上加报阈值",
    0x41: "加报水位以下加报阈值",
}
"""Running parameters (functions 42H, 43H): BCD values like elements."""

CONFIG_FUNCTIONS = frozenset({0x40, 0x41})
PARAMETER_FUNCTIONS = frozenset({0x42, 0x43})

BY_CODE: Final[dict[str, int]] = {info.code: ident for ident, info in ELEMENTS.items()}
"""ASCII frames name elements by mnemonic: mnemonic -> identifier byte."""


def default_definition(ident: int) -> int | None:
    """The data definition byte of the standard's type for ``ident``, or None if it has none."""
    info = ELEMENTS.get(ident)
    if info is None or info.digits == 0:
        return None
    return ((info.digits + 1) // 2) << 3 | info.decimals


def element_name(ident: int, function: int) -> str | None:
    """The name of identifier ``ident`` (one byte, or FFxx as a 16-bit int) in a frame of
    ``function``, or None where the standard names none."""
    if function in CONFIG_FUNCTIONS:
        return BASIC_CONFIG.get(ident)
    if function in PARAMETER_FUNCTIONS:
        return PARAMETERS.get(ident)
    info = ELEMENTS.get(ident)
    return None if info is None else info.label
