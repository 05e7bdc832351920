/* wordpiece_json_fuzz.c: loading a Hugging Face tokenizer.json with a WordPiece
 * model from bytes (csrc/text/wordpiece_json.c); the checks are those of
 * wordpiece_vocab_fuzz.c. */
#define WP_JSON 1
#include "wordpiece_vocab_fuzz.c"
