/* bert_chars.c: see bert_chars.h */
#include "bert_chars.h"
#include <utf8proc.h>

int oe_bert_is_removed(uint32_t cp) {
  if (cp == 0 || cp == 0xFFFD) return 1;
  if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
  if (cp > 0x10FFFF) return 1;
  switch (utf8proc_category((utf8proc_int32_t)cp)) {
  case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN:
    return 1;
  default:
    return 0;
  }
}

int oe_bert_is_whitespace(uint32_t cp) {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return 1;
  if (cp < 0x80 || cp > 0x10FFFF) return 0;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

int oe_bert_is_punctuation(uint32_t cp) {
  /* BertTokenizer treats every non-letter, non-digit ASCII symbol as punctuation */
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return 1;
  if (cp > 0x10FFFF) return 0;
  utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
  return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

int oe_bert_is_cjk(uint32_t cp) {
  /* BertTokenizer's _is_chinese_char: CJK Unified Ideographs and their
   * extensions A-E, the compatibility ideographs and their supplement. */
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

int oe_unicode_is_cased(uint32_t cp) {
  if (cp > 0x10FFFF) return 0;
  utf8proc_int32_t c = (utf8proc_int32_t)cp;
  utf8proc_category_t cat = utf8proc_category(c);
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return 1;
  /* Other_Lowercase / Other_Uppercase: most have a case mapping (U+0345,
   * Roman numerals, circled letters) or are Lm (case-ignorable, so never
   * asked); utf8proc has no such property, so the rest are listed: the
   * ordinal indicators and the squared, negative circled and negative
   * squared Latin capitals. */
  if (utf8proc_tolower(c) != c || utf8proc_toupper(c) != c) return 1;
  return cp == 0xAA || cp == 0xBA || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
         (cp >= 0x1F170 && cp <= 0x1F189);
}

int oe_unicode_is_case_ignorable(uint32_t cp) {
  switch (cp) {
  /* Word_Break = MidLetter */
  case 0x003A: case 0x00B7: case 0x0387: case 0x055F: case 0x05F4: case 0x2027: case 0xFE13: case 0xFE55: case 0xFF1A:
  /* Word_Break = MidNumLet */
  case 0x002E: case 0x2018: case 0x2019: case 0x2024: case 0xFE52: case 0xFF07: case 0xFF0E:
  /* Word_Break = Single_Quote */
  case 0x0027:
    return 1;
  default:
    break;
  }
  if (cp > 0x10FFFF) return 0;
  switch (utf8proc_category((utf8proc_int32_t)cp)) {
  case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
  case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
    return 1;
  default:
    return 0;
  }
}
