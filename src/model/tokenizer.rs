//! Prompt → token ids exactly as the reference: bert-base-uncased WordPiece (lower-case, accent
//! stripping, CJK characters split), `[CLS] … [SEP]`, BLIP's `[DEC]`/`[ENC]` appended to the
//! vocabulary, truncated and padded to 35 tokens.
//!
//! Reference: THUDM/ImageReward `c1392c6`, `ImageReward/models/BLIP/blip.py:init_tokenizer` and
//! `ImageReward/ImageReward.py:score` (`padding='max_length', truncation=True, max_length=35`).
//! The first id stays `[CLS]` (101): ImageReward never swaps in `[ENC]` as BLIP's own heads do.

use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::error::ModelError;

/// Token budget of the reference, `[CLS]` and `[SEP]` included (33 WordPieces of prompt).
pub const MAX_TOKENS: usize = 35;

/// bert-base-uncased's vocabulary, shipped because the released checkpoint comes without one.
const BUNDLED_VOCAB: &str = include_str!("../../resources/vocab.txt");

/// Tokens BERT never splits, plus BLIP's two additions (ids `len(vocab)` and `len(vocab)+1`).
const SPECIAL_TOKENS: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"];

/// One tokenised prompt, padded to [`MAX_TOKENS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTokens {
    /// Token ids, `[CLS] … [SEP] [PAD]…`.
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Number of real tokens (the model runs at this length; padding never changes `[CLS]`).
    pub len: usize,
    /// The prompt was longer than the model reads: users should be told.
    pub truncated: bool,
}

/// What the model sees of a prompt, as one number: prompts that tokenise identically (case,
/// spacing, accents, anything past the 35th token) share it, and so share their scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey(pub i64);

impl PromptTokens {
    /// The first 8 bytes of a BLAKE3 of the real token ids (padding excluded, it follows from the
    /// length): the key scores are stored under.
    pub fn key(&self) -> TokenKey {
        let mut hasher = blake3::Hasher::new();
        for id in &self.ids[..self.len.min(self.ids.len())] {
            hasher.update(&id.to_le_bytes());
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        TokenKey(i64::from_le_bytes(first))
    }
}

/// The reference tokenizer, built from `vocab.txt` or a `tokenizer.json`.
#[derive(Clone)]
pub struct PromptTokenizer {
    inner: Tokenizer,
}

impl std::fmt::Debug for PromptTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTokenizer").field("vocab_size", &self.vocab_size()).finish()
    }
}

impl PromptTokenizer {
    /// The tokenizer over the bundled bert-base-uncased vocabulary.
    pub fn bundled() -> Result<Self, ModelError> {
        Self::from_vocab_text(BUNDLED_VOCAB, Path::new("<bundled vocab.txt>"))
    }

    /// Builds from a `vocab.txt` file (one WordPiece per line, id = line number).
    pub fn from_vocab_file(path: &Path) -> Result<Self, ModelError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        Self::from_vocab_text(&text, path)
    }

    fn from_vocab_text(text: &str, path: &Path) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Tokenizer { path: path.to_path_buf(), reason };
        let vocab: ahash::AHashMap<String, u32> =
            text.lines().enumerate().map(|(i, tok)| (tok.trim_end_matches('\r').to_string(), i as u32)).collect();
        for required in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] {
            if !vocab.contains_key(required) {
                return Err(bad(format!("the vocabulary has no {required} token")));
            }
        }
        let model =
            WordPiece::builder().vocab(vocab).unk_token("[UNK]".into()).build().map_err(|e| bad(e.to_string()))?;
        let mut tk = Tokenizer::new(model);
        // clean_text, handle_chinese_chars, strip_accents follows lowercase, lowercase: BertTokenizer(do_lower_case=True).
        tk.with_normalizer(Some(BertNormalizer::new(true, true, None, true))).map_err(|e| bad(e.to_string()))?;
        tk.with_pre_tokenizer(Some(BertPreTokenizer));
        Self::finish(tk, path)
    }

    /// Builds from a Hugging Face `tokenizer.json` (its truncation and padding settings are replaced by the reference's).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, ModelError> {
        let tk = Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::finish(tk, path)
    }

    fn finish(mut tk: Tokenizer, path: &Path) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Tokenizer { path: path.to_path_buf(), reason };
        let id =
            |tk: &Tokenizer, t: &str| tk.token_to_id(t).ok_or_else(|| bad(format!("the vocabulary has no {t} token")));
        let (cls, sep) = (id(&tk, "[CLS]")?, id(&tk, "[SEP]")?);
        tk.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        tk.add_special_tokens(SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect::<Vec<_>>())
            .map_err(|e| bad(e.to_string()))?;
        tk.with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| bad(e.to_string()))?;
        let pad_id = id(&tk, "[PAD]")?;
        tk.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(MAX_TOKENS),
            pad_id,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        Ok(Self { inner: tk })
    }

    /// Vocabulary size including `[DEC]` and `[ENC]` (30524 for bert-base-uncased).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token, for tests and diagnostics.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenises one prompt as the reference does.
    pub fn encode(&self, prompt: &str) -> Result<PromptTokens, ModelError> {
        let enc = self.inner.encode(prompt, true).map_err(|e| ModelError::Tokenizer {
            path: "<prompt>".into(),
            reason: format!("cannot tokenise {prompt:?}: {e}"),
        })?;
        let mask = enc.get_attention_mask().to_vec();
        Ok(PromptTokens {
            ids: enc.get_ids().to_vec(),
            len: mask.iter().filter(|&&m| m == 1).count(),
            mask,
            truncated: !enc.get_overflowing().is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_vocab_has_blip_tokens_at_the_end() {
        let tk = PromptTokenizer::bundled().unwrap();
        assert_eq!(tk.vocab_size(), 30524);
        assert_eq!(tk.token_id("[DEC]"), Some(30522));
        assert_eq!(tk.token_id("[ENC]"), Some(30523));
    }

    #[test]
    fn known_prompt_matches_reference_ids() {
        // Ids recorded from the reference tokenizer (Hugging Face `bert-base-uncased`, as BLIP loads it).
        let tk = PromptTokenizer::bundled().unwrap();
        let t = tk.encode("a painting of an ocean with clouds and birds, day time, low depth field effect").unwrap();
        let expected = [
            101, 1037, 4169, 1997, 2019, 4153, 2007, 8044, 1998, 5055, 1010, 2154, 2051, 1010, 2659, 5995, 2492, 3466,
            102,
        ];
        assert_eq!(&t.ids[..19], &expected);
        assert!(t.ids[19..].iter().all(|&i| i == 0));
        assert_eq!(t.len, 19);
        assert_eq!(t.ids.len(), MAX_TOKENS);
        assert!(!t.truncated);
    }

    #[test]
    fn tokenizer_json_gives_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let bundled = PromptTokenizer::bundled().unwrap();
        bundled.inner.save(&path, false).unwrap();
        let from_json = PromptTokenizer::from_tokenizer_json(&path).unwrap();
        for prompt in ["a red cube", "Café CRÈME brûlée, 東京 [DEC] [MASK]", &"tower ".repeat(50)] {
            assert_eq!(from_json.encode(prompt).unwrap(), bundled.encode(prompt).unwrap(), "{prompt}");
        }
    }

    #[test]
    fn prompts_the_model_sees_alike_share_a_key() {
        let tk = PromptTokenizer::bundled().unwrap();
        let key = |p: &str| tk.encode(p).unwrap().key();
        assert_eq!(key("A  Red cube"), key("a red cube"));
        assert_eq!(key("café"), key("CAFE"), "accents are stripped");
        assert_ne!(key("a red cube"), key("a blue cube"));
        let long = "castle ".repeat(60);
        assert_eq!(key(&long), key(&format!("{long} and a moat")), "text past the 35th token is not read");
    }

    #[test]
    fn long_prompt_is_truncated_and_flagged() {
        let tk = PromptTokenizer::bundled().unwrap();
        let t = tk.encode(&"castle ".repeat(60)).unwrap();
        assert_eq!(t.len, MAX_TOKENS);
        assert_eq!(t.ids[MAX_TOKENS - 1], 102);
        assert!(t.truncated);
    }
}
