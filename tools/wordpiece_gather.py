#!/usr/bin/python3
"""wordpiece_gather.py: real strings with varied Unicode for the WordPiece
reference fixture, gathered from this Debian machine's files:

  mo:<locale>   translated messages (msgstr) of the gettext catalogues under
                /usr/share/locale/<locale>/LC_MESSAGES/*.mo (~200 locales)
  dpkg          package synopses and description paragraphs (/var/lib/dpkg/status)
  man:<lang>    NAME lines and text lines of the man pages (/usr/share/man,
                English and translated)
  edge          hand-written cases: accents, CJK (U+20000 and up included),
                emoji, control characters, invalid UTF-8, special tokens, very
                long words, empty strings, unassigned code points

Writes JSON lines {"src": ..., "hex": <the string's bytes>, "cn": [code
points that libutf8proc (the C tokenizer's Unicode data) calls unassigned]}.
Selection is deterministic (ordered by a hash of the text), deduplicated.

  /usr/bin/python3 tools/wordpiece_gather.py > /tmp/wordpiece_strings.jsonl
"""
import ctypes
import gettext
import glob
import gzip
import hashlib
import json
import os
import re
import sys

MAX_BYTES = 700          # real strings longer than this are left out
PER_LOCALE = 22          # messages per locale
DPKG_COUNT = 1100
MAN_NAME_COUNT = 500
MAN_TEXT_COUNT = 500

_utf8proc = ctypes.CDLL("libutf8proc.so.2")
_utf8proc.utf8proc_category.argtypes = [ctypes.c_int32]
_utf8proc.utf8proc_category.restype = ctypes.c_int


def unassigned(s):
    out = []
    for ch in s:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if _utf8proc.utf8proc_category(cp) == 0 and cp not in out:
            out.append(cp)
    return out


def key(b):
    return hashlib.sha1(b).hexdigest()


def pick(pool, n):
    """n strings of pool (a set of str), deterministic"""
    items = sorted(pool, key=lambda s: key(s.encode("utf-8", "surrogatepass")))
    return items[:n]


def usable(s):
    b = s.encode("utf-8", "surrogatepass")
    return 0 < len(b) <= MAX_BYTES


def from_mo():
    out = []
    for loc in sorted(os.listdir("/usr/share/locale")):
        pool = set()
        for f in sorted(glob.glob(f"/usr/share/locale/{loc}/LC_MESSAGES/*.mo")):
            try:
                with open(f, "rb") as fp:
                    cat = gettext.GNUTranslations(fp)._catalog
            except Exception:
                continue
            for k, v in cat.items():
                if k == "" or not isinstance(v, str):
                    continue
                if usable(v) and len(v.strip()) > 1:
                    pool.add(v)
        for s in pick(pool, PER_LOCALE):
            out.append((f"mo:{loc}", s))
    return out


def from_dpkg():
    pool = set()
    text = open("/var/lib/dpkg/status", encoding="utf-8", errors="replace").read()
    for m in re.finditer(r"^Description: (.*)\n((?: .*\n)*)", text, re.M):
        pool.add(m.group(1))
        para = []
        for line in m.group(2).splitlines():
            if line.strip() == ".":
                if para:
                    pool.add("\n".join(para))
                para = []
            else:
                para.append(line[1:])
        if para:
            pool.add("\n".join(para))
    return [("dpkg", s) for s in pick({s for s in pool if usable(s)}, DPKG_COUNT)]


def from_man():
    names, lines_by_lang = {}, {}
    for f in sorted(glob.glob("/usr/share/man/**/*.gz", recursive=True)):
        rel = f[len("/usr/share/man/"):].split("/")
        lang = rel[0] if not rel[0].startswith("man") else "en"
        try:
            raw = gzip.open(f).read(200000)
        except Exception:
            continue
        try:
            t = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        ls = t.splitlines()
        for i, l in enumerate(ls):
            if l.startswith(".SH") and i + 1 < len(ls):
                nxt = ls[i + 1]
                if nxt and not nxt.startswith(".") and usable(nxt):
                    names.setdefault(lang, set()).add(nxt)
                break
        for l in ls:
            if l and not l.startswith((".", "'", '\\"')) and len(l) > 20 and usable(l):
                lines_by_lang.setdefault(lang, set()).add(l)
    out = []
    langs = sorted(names)
    for lang in langs:
        for s in pick(names[lang], MAN_NAME_COUNT // len(langs) + 1):
            out.append((f"man:{lang}", s))
    langs = sorted(lines_by_lang)
    for lang in langs:
        for s in pick(lines_by_lang[lang], MAN_TEXT_COUNT // len(langs) + 1):
            out.append((f"man:{lang}", s))
    return out


def edge_cases():
    S = []
    add = S.append
    # empty and whitespace only
    for s in ["", " ", "   ", "\t\n\r", "\u00a0", "\u3000", "\u2028\u2029"]:
        add(s)
    # control and format characters
    for s in ["\x00", "a\x00b", "\ufffd", "a\ufffdb", "\x1b[31mred\x1b[0m text", "bell\x07here", "tab\there\nnew line\r\n",
              "zero\u200bwidth\u200cjoin\u200dchars", "\ufeffBOM at start", "soft\u00adhyphen", "line\u2028separator\u2029paragraph",
              "vertical\x0btab\x0cfeed", "next\x85line", "del\x7fete", "\u202eRTL override\u202c", "word\u2060joiner",
              "nbsp\u00a0here\u2009thin\u202fnarrow", "ideographic\u3000space", "ogham\u1680space"]:
        add(s)
    # accents and case
    for s in ["Héllo", "HÉLLO Wörld", "Crème brûlée", "naïve café résumé", "Ångström", "ñandú", "Dvořák", "Łódź Kraków",
              "ǄEMAL ǅemal ǆemal", "ﬁnancial ﬂow ﬃ", "x\u0301\u0327y", "e\u0327\u0301 vs e\u0301\u0327", "Ｃａｆé",
              "İstanbul İSTANBUL DİYARBAKIR ıi", "STRASSE straße ẞ", "Kelvin \u212a and Ohm \u2126 and Angstrom \u212b",
              "Tiếng Việt có dấu: Xin chào thế giới", "Z̷̢̛a̵̡l̶g̸o̷ ̶t̴e̸x̵t", "a\u0345b ᾳ ΑΙ \u0399\u0345",
              "ǰ ẖ ẘ ẙ ẚ", "ŉ ſ ǅ ǈ ǋ ǲ", "ﬀ ﬅ ﬆ", "ᾈ ᾉ ᾊ ᾼ ῌ ῼ"]:
        add(s)
    # Greek final sigma (str.lower()'s context rule)
    for s in ["ΟΔΥΣΣΕΥΣ", "ΣΑΣ.", "Σ", "ΑΣ", "ΑΣ'Β", "ΑΣ.", "ΑΣ.Β", "ΑΣ:Β", "ΑΣ\u0301", "ΑΣ\u0301Β", "ΜΆΣ ΚΑΙ ΣΥ",
              "ΑΣ1", "ΑΣ-Β", "Σ Α Σ", "ΑΣ[SEP]", "ΑΣ\u00adΒ", "ΑΣ\x00Β", "aΣ", "ªΣ", "ΑΣ🄰", "ΑΣ\u2019Β", "ΑΣ\u00b7Β",
              "ΑΣ\u02b0Β", "ΑΣ^Β", "ΑΣ`", "σ ς Σ ΣΣΣ", "ΣΑΣ ΕΥΧΑΡΙΣΤΟΥΜΕ ΠΟΛΥ!", "ΑΣ 中", "ΑΣ中Β", "ΑΣ\u3000Β"]:
        add(s)
    # CJK, Hangul, kana, fullwidth; BMP and U+20000 and up
    for s in ["你好，世界！", "日本語のテキストです。", "한국어 텍스트 한글", "中文English混合text", "ＡＢＣ１２３！？",
              "ｶﾀｶﾅ ﾊﾝｶｸ", "𠀀𠀁 𪚥 𫝀 𬺰", "𠮷野家で食べた", "吉野家𠮷", "﨑 丽 丽", "中𠀀文", "𪚥字", "漢字かな交じり文",
              "〆切 々 〇", "㐀㐁 䶵", "𫠝𫠞 𬺡", "⼀⼁ Kangxi", "\U0002EBF0 ext-I",
              "abc𠀀def", "the 𠮷 word𠮷s", "x𬺰y", "a丽b", "ΑΣ𠀀"]:
        add(s)
    # emoji and symbols
    for s in ["I ❤️ NY 👍🏽", "👨‍👩‍👧 family 🇫🇷🇩🇪", "😀😃😄😁", "snow☃man", "∑ ∫ √ ∞ ≠ ≤ ≥", "°C ½ ¼ x² H₂O",
              "©®™ §¶ †‡", "→ ← ↑ ↓ ⇒", "♠♣♥♦", "🙂" * 60, "🐍python🐍", "smile😀face"]:
        add(s)
    # scripts with combining marks
    for s in ["مرحبا بالعالم", "مَرْحَبًا", "שלום עולם", "שָׁלוֹם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "வணக்கம் உலகம்",
              "Привет, МИР! Ёлка", "Բարեւ աշխարհ", "გამარჯობა", "ሰላም ዓለም", "ᏣᎳᎩ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ",
              "\U0001D15E\U0001D165 a\U0001D16D\U0001D165b"]:
        add(s)
    # punctuation
    for s in ["hello...world!!!", "email@example.com", "$100.00 €50 £3 ¥7", "a-b_c/d\\e", "«quotes» „German“ 'single' \"double\"",
              "¿Qué? ¡Hola!", "em—dash–en-dash", "1,000,000.50", "C++ & C# | F#", "~/path/to/file.txt",
              "https://www.debian.org/intro/about#what", "<html><body>x</body></html>", "{json: [1, 2]}", "50% off*",
              "「引用」『書名』【注】", "‘curly’ “quotes” ‹›", "a·b・c", "§1.2(a)", "#hashtag @user", "^caret`grave~tilde"]:
        add(s)
    # special tokens written in the text
    for s in ["[CLS] hello [SEP]", "a[SEP]b", "[cls] [sep] lower", "[MASK]ed word", "[UNK]", "[PAD][PAD]", "[CLS", "[[SEP]]",
              "x [MASK] y", "[SEP][CLS]", "[unused1] token", "ΑΣ[CLS]Β"]:
        add(s)
    # long words (100 code points is the limit)
    for s in ["a" * 100, "a" * 101, "é" * 100, "é" * 101, "x" * 250, "supercalifragilisticexpialidocious",
              "pneumonoultramicroscopicsilicovolcanoconiosis", "ab" * 50 + " " + "ab" * 51, "日" * 120,
              "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
              ("word " * 400).strip(), "a" * 99 + "\u0301", "🙂" * 101]:
        add(s)
    # unassigned and private use code points (BertTokenizer removes C*, Cn included)
    for s in ["abc\U000E0080def", "x\U0003FFFEy", "\u0378 gap", "end\uffff", "pri\ue000vate", "sup\U000F0000plementary",
              "new\U0001FAE9emoji", "a\u0378b c", "\U0002EBF0 ideograph"]:
        add(s)
    out = [("edge", s) for s in S]
    # invalid UTF-8, as bytes
    for b in [b"ab\xffcd", b"\xc3\x28", b"caf\xc3", b"\xe2\x82", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80 above",
              b"\xc0\xaf overlong", b"\x80\x80 stray", b"ok \xfe\xff bom-ish", b"\xe4\xb8 half \xe4\xb8\xad full",
              b"[CLS\xff] x", b"\xce\xa3\xff\xce\x91"]:
        out.append(("edge", b))
    return out


def main():
    seen, rows = set(), []
    for src, s in edge_cases() + from_mo() + from_dpkg() + from_man():
        b = s if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass")
        if b in seen:
            continue
        seen.add(b)
        text = b.decode("utf-8", "replace")
        rows.append({"src": src, "hex": b.hex(), "cn": unassigned(text)})
    for r in rows:
        sys.stdout.write(json.dumps(r, ensure_ascii=True) + "\n")
    sys.stderr.write(f"{len(rows)} strings\n")


if __name__ == "__main__":
    main()
