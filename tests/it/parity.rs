//! Parity with the reference implementation, on tiny random-weight models built by
//! `tests/fixtures/make_fixtures.py` with the reference package's own classes.

use candle_core::{DType, Device, Tensor};

use rewardlens::model::preprocess::{load_image, normalize_chw, resize_crop_rgb};
use rewardlens::model::{LoadedModel, PromptTokenizer, REWARD_MEAN, REWARD_STD, load_model};

use crate::util::{expected, fixtures, max_abs_diff, ranking, tensors};

const TOLERANCE: f32 = 1e-4;

fn load(folder: &str) -> LoadedModel {
    load_model(&fixtures().join(folder), &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn constants_match_the_reference() {
    let e = expected();
    assert_eq!(e.mean, REWARD_MEAN);
    assert_eq!(e.std, REWARD_STD);
}

#[test]
fn token_ids_match_the_reference_with_bundled_and_folder_vocab() {
    let e = expected();
    let from_folder = load("tiny-st").tokenizer;
    for tokenizer in [PromptTokenizer::bundled().unwrap(), from_folder] {
        for p in &e.prompts {
            let t = tokenizer.encode(&p.text).unwrap();
            assert_eq!(t.ids, p.input_ids, "ids of {:?}", p.text);
            assert_eq!(t.mask, p.attention_mask, "mask of {:?}", p.text);
        }
    }
}

#[test]
fn preprocessed_pixels_match_pillow() {
    let e = expected();
    let t = tensors();
    let lut = t["normalize_lut"].to_vec2::<f32>().unwrap();
    for img in &e.images {
        let stem = img.stem();
        let ours = resize_crop_rgb(&load_image(&fixtures().join(&img.file)).unwrap());
        let theirs = t[&format!("pixels_u8.{stem}")].flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let max_lsb = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        if img.is_jpeg() {
            // libjpeg-turbo and zune-jpeg round their IDCT/upsampling differently.
            assert!(max_lsb <= 8, "{stem}: JPEG decode differs by {max_lsb} LSB");
        } else {
            assert_eq!(max_lsb, 0, "{stem} ({}) differs from Pillow by {max_lsb} LSB", img.pil_mode);
        }
        // Normalisation: every channel value through the reference's own ToTensor+Normalize.
        let normalised = normalize_chw(&theirs);
        for c in 0..3 {
            for i in 0..224 * 224 {
                let want = lut[c][theirs[i * 3 + c] as usize];
                assert!((normalised[c * 224 * 224 + i] - want).abs() <= 1e-6, "{stem} channel {c}");
            }
        }
    }
    let full = t["pixels.rgb_300x200"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let ours = normalize_chw(&resize_crop_rgb(&load_image(&fixtures().join("images/rgb_300x200.png")).unwrap()));
    assert!(max_abs_diff(&ours, &full) <= 1e-6);
}

/// The reference's pixels for one image, `[1, 3, 224, 224]`.
fn reference_pixels(t: &std::collections::HashMap<String, Tensor>, stem: &str) -> Tensor {
    let u8s = t[&format!("pixels_u8.{stem}")].flatten_all().unwrap().to_vec1::<u8>().unwrap();
    Tensor::from_vec(normalize_chw(&u8s), (1, 3, 224, 224), &Device::Cpu).unwrap()
}

#[test]
fn image_tokens_and_cls_features_match_through_both_formats() {
    let e = expected();
    let t = tensors();
    for folder in ["tiny-pt", "tiny-st"] {
        let m = load(folder);
        for img in &e.images {
            let stem = img.stem();
            let tokens = m.model.image_features(&reference_pixels(&t, &stem)).unwrap();
            let want = t[&format!("image_tokens.{stem}")].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let got = tokens.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d <= TOLERANCE, "{folder} {stem}: image tokens differ by {d}");
            for (j, p) in e.prompts.iter().enumerate() {
                let prompt = m.tokenizer.encode(&p.text).unwrap();
                let cls = m.model.text_features(&[prompt], &tokens).unwrap();
                let got = cls.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let want = t[&format!("cls.{stem}.{j}")].to_vec1::<f32>().unwrap();
                let d = max_abs_diff(&got, &want);
                assert!(d <= TOLERANCE, "{folder} {stem} prompt {j}: [CLS] differs by {d}");
            }
        }
    }
}

#[test]
fn rewards_and_rankings_match_through_both_formats() {
    let e = expected();
    let t = tensors();
    for folder in ["tiny-pt", "tiny-st"] {
        let m = load(folder);
        for (j, p) in e.prompts.iter().enumerate() {
            let prompt = m.tokenizer.encode(&p.text).unwrap();
            // The whole path from the file, batched: every image against this prompt at once.
            let pixels: Vec<Vec<f32>> = e
                .images
                .iter()
                .map(|img| normalize_chw(&resize_crop_rgb(&load_image(&fixtures().join(&img.file)).unwrap())))
                .collect();
            let refs: Vec<&[f32]> = pixels.iter().map(Vec::as_slice).collect();
            let batch = m.model.pixels_to_tensor(&refs).unwrap();
            let ours = m.model.score(std::slice::from_ref(&prompt), &batch).unwrap();
            let want: Vec<f32> = e.rewards.iter().map(|row| row[j]).collect();
            for (i, img) in e.images.iter().enumerate() {
                let d = (ours[i] - want[i]).abs();
                if img.is_jpeg() {
                    // Our JPEG decode differs by a few LSBs; the reward through the reference's
                    // own pixels is checked at full tolerance below.
                    assert!(d <= 5e-2, "{folder} {} prompt {j}: reward off by {d}", img.file);
                    let exact =
                        m.model.score(std::slice::from_ref(&prompt), &reference_pixels(&t, &img.stem())).unwrap();
                    let d = (exact[0] - want[i]).abs();
                    assert!(
                        d <= TOLERANCE,
                        "{folder} {} prompt {j}: reward from reference pixels off by {d}",
                        img.file
                    );
                } else {
                    assert!(d <= TOLERANCE, "{folder} {} prompt {j}: reward off by {d}", img.file);
                }
            }
            assert_eq!(ranking(&ours), ranking(&want), "{folder}: ranking for prompt {j} differs");
        }
    }
}

#[test]
fn ranking_matches_inference_rank() {
    let e = expected();
    let m = load("tiny-st");
    let prompt = m.tokenizer.encode(&e.prompts[e.inference_rank.prompt_index].text).unwrap();
    let mut scores = Vec::new();
    for file in &e.inference_rank.files {
        let pixels = normalize_chw(&resize_crop_rgb(&load_image(&fixtures().join(file)).unwrap()));
        let batch = m.model.pixels_to_tensor(&[&pixels]).unwrap();
        scores.push(m.model.score(std::slice::from_ref(&prompt), &batch).unwrap()[0]);
    }
    // inference_rank gives each image its 1-based rank.
    let order = ranking(&scores);
    let mut ranks = vec![0; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        ranks[i] = r + 1;
    }
    assert_eq!(ranks, e.inference_rank.ranks);
}

#[test]
fn mixed_prompt_batch_equals_single_runs() {
    let e = expected();
    let t = tensors();
    let m = load("tiny-st");
    let stems: Vec<String> = e.images.iter().take(4).map(|i| i.stem()).collect();
    let pixels = Tensor::cat(&stems.iter().map(|s| reference_pixels(&t, s)).collect::<Vec<_>>(), 0).unwrap();
    // Prompts of different lengths in one batch exercise the padding mask.
    let prompts: Vec<_> = (0..4).map(|j| m.tokenizer.encode(&e.prompts[j].text).unwrap()).collect();
    let batched = m.model.score(&prompts, &pixels).unwrap();
    for (i, s) in stems.iter().enumerate() {
        assert!((batched[i] - e.rewards[i][i]).abs() <= TOLERANCE, "{s}: batched mixed-prompt reward differs");
    }
}

#[test]
fn half_precision_stays_close_with_same_ranking() {
    let e = expected();
    let t = tensors();
    let f32_model = load("tiny-st");
    let stems: Vec<String> = e.images.iter().map(|i| i.stem()).collect();
    let pixels = Tensor::cat(&stems.iter().map(|s| reference_pixels(&t, s)).collect::<Vec<_>>(), 0).unwrap();
    // The tiny model's weights are deliberately large, which magnifies rounding: f16 (10-bit
    // mantissa) must still stay within 2e-2 and rank alike; bf16 (7-bit) within 0.15.
    for (dtype, tolerance, same_ranking) in [(DType::F16, 2e-2, true), (DType::BF16, 0.15, false)] {
        let m = load_model(&fixtures().join("tiny-st"), &Device::Cpu, dtype).unwrap();
        for p in &e.prompts {
            let prompt = m.tokenizer.encode(&p.text).unwrap();
            let half = m.model.score(std::slice::from_ref(&prompt), &pixels).unwrap();
            let full = f32_model.model.score(std::slice::from_ref(&prompt), &pixels).unwrap();
            let d = max_abs_diff(&half, &full);
            assert!(d < tolerance, "{dtype:?} differs from f32 by {d} for {:?}", p.text);
            if same_ranking {
                assert_eq!(ranking(&half), ranking(&full), "{dtype:?} ranking for {:?}", p.text);
            }
        }
    }
}
