// wordpiece_hf.js: @huggingface/tokenizers (the pure JavaScript port of
// Hugging Face's tokenizers) set up as bert-base-uncased, for the tools that
// make and time the WordPiece reference (wordpiece_reference.js, wordpiece_bench_hf.js).
// The tokenizer is built from a tokenizer.json object made here:
// BertNormalizer(clean_text, handle_chinese_chars, strip_accents null,
// lowercase), BertPreTokenizer, WordPiece(vocab, [UNK], "##", 100), a
// TemplateProcessing post-processor "[CLS] $A [SEP]", and the five special
// tokens as added tokens (normalized false), as in bert-base-uncased's own
// tokenizer.json.
"use strict";
const fs = require("fs");
const path = require("path");

function makeTokenizer(pkgDir, vocabPath) {
  const { Tokenizer } = require(path.resolve(pkgDir, "dist/tokenizers.cjs"));
  const pkgVersion = JSON.parse(fs.readFileSync(path.resolve(pkgDir, "package.json"), "utf8")).version;

  const lines = fs.readFileSync(vocabPath, "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const vocab = {};
  lines.forEach((t, i) => { vocab[t] = i; });
  const SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((t) => ({
      id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: "[SEP]", type_id: 1 } },
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [vocab["[CLS]"]], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [vocab["[SEP]"]], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab },
  };
  const tok = new Tokenizer(tokenizerJson, {});
  return { tok, vocab, pkgVersion };
}

module.exports = { makeTokenizer };
