"""The code tables of SL651-2014 that frame and body share: control characters, function
codes (SL651-2014 table 6, 2FH to 51H) and station type codes (the byte after the station
address in reports, an ASCII letter).
"""

from __future__ import annotations

import enum

SOH = 0x01  # ASCII frame start
HEX_START = b"\x7e\x7e"  # HEX/BCD frame start
STX = 0x02  # body start, one packet
SYN = 0x16  # body start, one packet of several (packet count and number follow)
ETX = 0x03  # end: no more packets
ETB = 0x17  # end: more packets follow
ENQ = 0x05  # end: a query, the other side answers
EOT = 0x04  # end: transfer over, the link may close
ACK = 0x06  # end: acknowledged, go on
NAK = 0x15  # end: refused, send again
ESC = 0x1B  # end: transfer over, keep the link online

START_CHARS = frozenset({STX, SYN})
END_CHARS = frozenset({ETX, ETB, ENQ, EOT, ACK, NAK, ESC})
END_NAMES = {ETX: "ETX", ETB: "ETB", ENQ: "ENQ", EOT: "EOT", ACK: "ACK", NAK: "NAK", ESC: "ESC"}


class Function(enum.IntEnum):
    """Function codes of SL651-2014 (report, query and set functions)."""

    KEEP_ALIVE = 0x2F  # link keep-alive
    TEST = 0x30  # test report
    UNIFORM = 0x31  # uniform-interval hydrological report
    SCHEDULED = 0x32  # scheduled report
    ADDED = 0x33  # added report (a threshold crossed)
    HOURLY = 0x34  # hourly report
    MANUAL = 0x35  # manually entered data
    PICTURE = 0x36  # picture report, or the centre's picture query
    REALTIME_QUERY = 0x37  # the centre asks for real-time data
    PERIOD_QUERY = 0x38  # the centre asks for a period's data
    MANUAL_QUERY = 0x39  # the centre asks for manually entered data
    ELEMENT_QUERY = 0x3A  # the centre asks for given elements
    SET_BASIC_CONFIG = 0x40
    READ_BASIC_CONFIG = 0x41
    SET_PARAMETERS = 0x42
    READ_PARAMETERS = 0x43
    PUMP_QUERY = 0x44  # pump motor's real-time data
    VERSION_QUERY = 0x45  # terminal software version
    STATUS_QUERY = 0x46  # status and alarm
    INIT_STORAGE = 0x47  # erase the stored data
    FACTORY_RESET = 0x48
    SET_PASSWORD = 0x49
    SET_CLOCK = 0x4A
    SET_IC_CARD = 0x4B
    PUMP_CONTROL = 0x4C
    VALVE_CONTROL = 0x4D
    GATE_CONTROL = 0x4E
    WATER_CONTROL = 0x4F  # water-quantity set-point control
    EVENT_QUERY = 0x50  # event records
    CLOCK_QUERY = 0x51


FUNCTION_NAMES = {
    0x2F: "链路维持报",
    0x30: "测试报",
    0x31: "均匀时段水文信息报",
    0x32: "遥测站定时报",
    0x33: "遥测站加报报",
    0x34: "遥测站小时报",
    0x35: "遥测站人工置数报",
    0x36: "遥测站图片报",
    0x37: "查询遥测站实时数据",
    0x38: "查询遥测站时段数据",
    0x39: "查询遥测站人工置数",
    0x3A: "查询遥测站指定要素数据",
    0x40: "修改遥测站基本配置表",
    0x41: "读取遥测站基本配置表",
    0x42: "修改遥测站运行参数配置表",
    0x43: "读取遥测站运行参数配置表",
    0x44: "查询水泵电机实时工作数据",
    0x45: "查询遥测终端软件版本",
    0x46: "查询遥测站状态和报警信息",
    0x47: "初始化固态存储数据",
    0x48: "恢复终端出厂设置",
    0x49: "修改密码",
    0x4A: "设置遥测站时钟",
    0x4B: "设置遥测终端IC卡状态",
    0x4C: "控制水泵开关命令",
    0x4D: "控制阀门开关命令",
    0x4E: "控制闸门开关命令",
    0x4F: "水量定值控制命令",
    0x50: "查询遥测站事件记录",
    0x51: "查询遥测站时钟",
}

REPORTS = frozenset({0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36})
"""Functions a station sends on its own; a centre acknowledges them."""

# Uplink bodies whose station address (F1F1) is followed by the station type byte.
TYPED = frozenset({0x30, 0x31, 0x32, 0x33, 0x34, 0x36, 0x37, 0x38, 0x3A, 0x44})

STATION_TYPES = {
    0x50: "P 降水",
    0x48: "H 河道",
    0x4B: "K 水库(湖泊)",
    0x5A: "Z 闸坝",
    0x44: "D 泵站",
    0x54: "T 潮汐",
    0x4D: "M 墒情",
    0x47: "G 地下水",
    0x51: "Q 水质",
    0x49: "I 取水口",
    0x4F: "O 排水口",
}
