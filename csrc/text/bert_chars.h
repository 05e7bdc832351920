/* bert_chars.h: the character classes of BertTokenizer's BasicTokenizer, from
 * libutf8proc's Unicode data, and the two Unicode properties the final sigma
 * rule of str.lower() needs (Cased, Case_Ignorable). */
#ifndef OE_BERT_CHARS_H
#define OE_BERT_CHARS_H
#include <stdint.h>

/* removed by clean_text: U+0000, U+FFFD, and category C* except tab, LF, CR */
int oe_bert_is_removed(uint32_t cp);
/* word separator: space, tab, LF, CR, Zs, Zl, Zp */
int oe_bert_is_whitespace(uint32_t cp);
/* ASCII 33-47, 58-64, 91-96, 123-126, or category P* */
int oe_bert_is_punctuation(uint32_t cp);
/* BertTokenizer's _is_chinese_char ranges */
int oe_bert_is_cjk(uint32_t cp);
/* Unicode Cased: Lu, Ll, Lt, or Other_Lowercase / Other_Uppercase */
int oe_unicode_is_cased(uint32_t cp);
/* Unicode Case_Ignorable: Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter,
 * MidNumLet, Single_Quote */
int oe_unicode_is_case_ignorable(uint32_t cp);
#endif
