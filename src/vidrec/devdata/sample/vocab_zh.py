"""The Chinese catalog's vocabularies (``generate_sample --lang zh``): genres, words, titles, names.

The same world as the English catalog (the same draws), written in Chinese: genre names, title
adjectives and genre words, person names (surname + given name) and a description template that
names the item's genres and two of their words, so a text model can learn genre from the text alone.
"""

from __future__ import annotations

#: Chinese name of each genre of :data:`vidrec.devdata.sample.vocab.GENRES`.
GENRE_NAMES_ZH: dict[str, str] = {
    "Drama": "剧情",
    "Comedy": "喜剧",
    "Action": "动作",
    "Thriller": "惊悚",
    "Romance": "爱情",
    "Documentary": "纪录",
    "Crime": "犯罪",
    "Adventure": "冒险",
    "Sci-Fi": "科幻",
    "Horror": "恐怖",
    "Animation": "动画",
    "Family": "家庭",
    "Fantasy": "奇幻",
    "Mystery": "悬疑",
    "Kids": "儿童",
    "History": "历史",
    "Music": "音乐",
    "Sport": "运动",
    "War": "战争",
    "Western": "西部",
}

#: Words titles and descriptions draw from, per genre (six each, as in the English vocabulary).
GENRE_WORDS_ZH: dict[str, tuple[str, ...]] = {
    "Drama": ("家族", "秘密", "承诺", "书信", "寒冬", "遗产"),
    "Comedy": ("婚礼", "室友", "误会", "假期", "邻居", "自驾游"),
    "Action": ("劫案", "特工", "爆炸", "追逐", "雇佣兵", "对决"),
    "Thriller": ("阴谋", "证人", "人质", "陌生人", "背叛", "倒计时"),
    "Romance": ("恋人", "盛夏", "重逢", "情书", "初次约会", "心动"),
    "Documentary": ("自然", "调查", "档案", "访谈", "星球", "真相"),
    "Crime": ("侦探", "谋杀", "帮派", "抢劫", "腐败", "警局"),
    "Adventure": ("探险", "宝藏", "海岛", "旅程", "丛林", "地图"),
    "Sci-Fi": ("星舰", "机器人", "银河", "时间旅行", "殖民地", "信号"),
    "Horror": ("鬼屋", "诅咒", "仪式", "山间小屋", "附身", "噩梦"),
    "Animation": ("卡通", "会说话的动物", "魔法", "玩具", "王国", "机甲"),
    "Family": ("祖父母", "小狗", "夏令营", "兄弟姐妹", "团圆", "后院"),
    "Fantasy": ("巨龙", "巫师", "预言", "精灵", "神剑", "仙境"),
    "Mystery": ("线索", "失踪", "庄园", "谜题", "嫌疑人", "日记"),
    "Kids": ("学校", "友谊", "冒险社", "宠物", "游乐场", "儿歌"),
    "History": ("帝国", "革命", "王朝", "战役", "女王", "世纪"),
    "Music": ("乐队", "巡演", "演唱会", "唱片", "歌手", "节奏"),
    "Sport": ("冠军", "教练", "黑马", "马拉松", "联赛", "逆转"),
    "War": ("士兵", "前线", "抵抗", "沦陷", "中队", "战壕"),
    "Western": ("亡命徒", "警长", "边疆", "牧场", "淘金", "酒馆"),
}

#: Title adjectives (one per English one, in the same order).
TITLE_ADJECTIVES_ZH: tuple[str, ...] = (
    "沉默", "最后", "破碎", "隐秘", "金色", "黑暗", "失落", "狂野", "深红", "遥远",
    "无尽", "冰封", "燃烧", "渺小", "秘密", "终极", "午夜", "闪电", "安静", "钢铁",
)  # fmt: skip

#: Given names and surnames (as many as the English first and last names).
GIVEN_NAMES_ZH: tuple[str, ...] = (
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
    "杰", "娟", "涛", "明", "超", "秀", "霞", "平", "刚", "桂", "英", "华",
)  # fmt: skip

SURNAMES_ZH: tuple[str, ...] = (
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙",
    "胡", "朱", "高", "林", "何", "郭", "马", "罗", "梁", "宋", "郑", "谢",
)  # fmt: skip

#: Languages of a Chinese catalog's items, and their shares.
LANGUAGES_ZH: tuple[str, ...] = ("zh", "en", "ja", "ko")

LANGUAGE_WEIGHTS_ZH: tuple[float, ...] = (0.8, 0.1, 0.05, 0.05)

#: The languages ``generate_sample --lang`` writes.
CATALOG_LANGUAGES: tuple[str, ...] = ("en", "zh")


def title_zh(adjective_idx: int, noun: str, sequel: int | None) -> str:
    """A Chinese title: ``<adjective>的<noun>`` (``沉默的宝藏``), a sequel number appended."""
    title = f"{TITLE_ADJECTIVES_ZH[adjective_idx]}的{noun}"
    return f"{title}{sequel}" if sequel else title


def description_zh(
    adjective_idx: int, genres: list[str], w1: str, w2: str, episode: bool, director: str
) -> str:
    """``一部<adjective>的<genres><电影|剧集>，讲述<w1>与<w2>的故事，由<director>执导。``"""
    names = "、".join(GENRE_NAMES_ZH[g] for g in genres)
    form = "剧集" if episode else "电影"
    return (
        f"一部{TITLE_ADJECTIVES_ZH[adjective_idx]}的{names}{form}，讲述{w1}与{w2}的故事，由{director}执导。"
    )


def person_name_zh(k: int) -> str:
    """The ``k``-th distinct Chinese name: surname + given name, then surname + two given names."""
    n = len(GIVEN_NAMES_ZH)
    given, surname = GIVEN_NAMES_ZH[k % n], SURNAMES_ZH[(k // n) % len(SURNAMES_ZH)]
    r = k // (n * len(SURNAMES_ZH))
    if r == 0:
        return f"{surname}{given}"
    second = GIVEN_NAMES_ZH[(r - 1) % n]
    suffix = f"{(r - 1) // n + 1}" if r > n else ""
    return f"{surname}{given}{second}{suffix}"
