#pragma once
// trainpp's tokenizers: tokenizer.json as the `tokenizers` library reads it (BPE, WordPiece, Unigram
// and their normalizers, pre-tokenizers, post-processors and decoders), and tokenizer_config.json as
// AutoTokenizer reads it. Kept out of <trainpp/trainpp.hpp>: it needs PCRE2 and utf8proc, which the
// CMake target trainpp::tokenizers brings.

#include <trainpp/tokenizers/tokenizer.hpp>

namespace trainpp {
using tokenizers::Tokenizer;
using tokenizers::TokenizerConfig;
}  // namespace trainpp
