//! ComfyUI (comfyanonymous/ComfyUI `nodes.py` `SaveImage`): the `prompt` API graph that actually ran, or failing that the
//! `workflow` UI graph. No field says which text is the prompt, so it is found by following the
//! final sampler's `positive`/`negative` inputs back to the text encoders; a graph where that
//! is ambiguous or leads somewhere unknown gives `None`, never a guess.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::{GenerationParams, json_f64, json_i64, json_string, json_u32, parse_json_object};

/// How far any backwards walk goes before giving up (graphs can be cyclic when malformed).
const MAX_DEPTH: usize = 64;
/// Inputs that hold prompt text on text-encoder nodes (SD1/SDXL/SD3/Flux, HunyuanDiT, Qwen-Image
/// variants); when an encoder's inputs differ, there is no single prompt.
const TEXT_KEYS: &[&str] = &["text", "text_g", "text_l", "clip_g", "clip_l", "t5xxl", "prompt", "bert", "mt5xl"];
/// Inputs that hold a node's text, most specific first: Impact Pack's resolved wildcard, core
/// and WAS text and primitive nodes, rgthree's Power Prompt and Comfyroll's `CR Prompt Text`
/// (`prompt`), Easy-Use's `positive`/`negative`, the templates of wildcard and LLM nodes,
/// Derfuu's `Text`. Add a custom node's input here when its text sits under a new name.
const TEXT_SOURCE_KEYS: &[&str] = &[
    "populated_text",
    "text",
    "string",
    "value",
    "prompt",
    "positive",
    "text_positive",
    "wildcard_text",
    "text_input",
    "Text",
];

/// Inputs through which conditioning flows on combine/concat/set-area/control-net nodes.
const CONDITIONING_KEYS: &[&str] = &[
    "conditioning",
    "conditioning_1",
    "conditioning_2",
    "conditioning_to",
    "conditioning_from",
    "conditioning_a",
    "conditioning_b",
    "cond",
    "input",
];

/// Parses a `prompt` API graph; `None` when it is not one.
pub fn parse_comfyui_prompt(text: &str) -> Option<GenerationParams> {
    let graph = parse_json_object(text)?;
    if !graph.values().any(|n| n.get("class_type").is_some()) {
        return None;
    }
    let mut p = Graph::new(&graph).params();
    p.raw = text.to_string();
    Some(p)
}

/// Parses a `workflow` UI graph (used only when there is no `prompt`), by rebuilding an API graph
/// from its nodes, links and the widget order of the common nodes.
pub fn parse_comfyui_workflow(text: &str) -> Option<GenerationParams> {
    let workflow = parse_json_object(text)?;
    let graph = workflow_to_api(&workflow)?;
    let mut p = Graph::new(&graph).params();
    p.raw = text.to_string();
    Some(p)
}

/// What a conditioning input resolves to: the texts reached, each marked regional when it went
/// through an area/mask node; `None` inside means a branch could not be followed.
type Texts = Vec<(Option<String>, bool)>;

/// Node visits one parse may spend on text and conditioning walks: shared sub-graphs make the
/// walks branch, and a hostile graph could otherwise make them exponential.
const MAX_VISITS: usize = 20_000;

struct Graph<'a> {
    nodes: &'a Map<String, Value>,
    visits_left: std::cell::Cell<usize>,
}

/// A link is `[node_id, output_slot]`.
fn link(v: &Value) -> Option<(String, u64)> {
    let arr = v.as_array()?;
    if arr.len() != 2 {
        return None;
    }
    let id = match &arr[0] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some((id, arr[1].as_u64()?))
}

impl<'a> Graph<'a> {
    fn new(nodes: &'a Map<String, Value>) -> Self {
        Self { nodes, visits_left: std::cell::Cell::new(MAX_VISITS) }
    }

    /// Takes one visit from the budget; `false` once it is spent.
    fn spend(&self) -> bool {
        let left = self.visits_left.get();
        self.visits_left.set(left.saturating_sub(1));
        left > 0
    }

    fn class(&self, id: &str) -> &str {
        self.nodes.get(id).and_then(|n| n.get("class_type")).and_then(Value::as_str).unwrap_or("")
    }

    fn inputs(&self, id: &str) -> Option<&Map<String, Value>> {
        self.nodes.get(id)?.get("inputs")?.as_object()
    }

    fn input(&self, id: &str, key: &str) -> Option<&Value> {
        self.inputs(id)?.get(key)
    }

    fn linked(&self, id: &str, key: &str) -> Option<String> {
        self.input(id, key).and_then(link).map(|(i, _)| i)
    }

    fn is_sampler(&self, id: &str) -> bool {
        let class = self.class(id);
        let has = |k: &str| self.input(id, k).is_some();
        class.starts_with("KSampler")
            || class.starts_with("SamplerCustom")
            || (has("positive") && has("negative") && (has("seed") || has("noise_seed")) && has("steps"))
    }

    /// Every node upstream of `id`.
    fn ancestors(&self, id: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![id.to_string()];
        while let Some(n) = stack.pop() {
            for v in self.inputs(&n).into_iter().flat_map(|m| m.values()) {
                if let Some((up, _)) = link(v)
                    && seen.insert(up.clone())
                {
                    stack.push(up);
                }
            }
        }
        seen
    }

    /// Parameters of the graph: those of its final sampler (one whose output feeds no other
    /// sampler); with several final samplers, only what they agree on.
    fn params(&self) -> GenerationParams {
        let samplers: BTreeSet<String> = self.nodes.keys().filter(|id| self.is_sampler(id)).cloned().collect();
        let upstream: HashSet<String> = samplers.iter().flat_map(|s| self.ancestors(s)).collect();
        let mut finals: Vec<&String> = samplers.iter().filter(|s| !upstream.contains(*s)).collect();
        if finals.len() > 1 {
            let saved: HashSet<String> = self
                .nodes
                .keys()
                .filter(|id| self.class(id).contains("Save"))
                .flat_map(|id| self.ancestors(id))
                .collect();
            let kept: Vec<&String> = finals.iter().copied().filter(|s| saved.contains(*s)).collect();
            if !kept.is_empty() {
                finals = kept;
            }
        }
        let mut all = finals.iter().map(|s| self.pass_params(s));
        let mut p = all.next().unwrap_or_else(|| GenerationParams::new("comfyui", ""));
        for other in all {
            agree(&mut p, &other);
        }
        if p.model.is_none() {
            // One checkpoint in the whole graph is the model whatever the wiring.
            let ckpts: BTreeSet<String> = self
                .nodes
                .keys()
                .filter_map(|id| self.input(id, "ckpt_name"))
                .filter_map(|v| self.scalar(v, 0))
                .collect();
            if ckpts.len() == 1 {
                p.model = ckpts.into_iter().next();
            }
        }
        p
    }

    /// What the image made by final sampler `id` reports, as A1111 reports a hires-fix image:
    /// the final pass's prompts (the text that made the saved image), the base pass's seed,
    /// steps, CFG, sampler and size, and the later passes' values as `hires …` settings. A final
    /// pass with a checkpoint of its own is reported by itself.
    fn pass_params(&self, id: &str) -> GenerationParams {
        let last = self.sampler_params(id);
        let Some(base_id) = self.base_pass(id) else { return last };
        let base = self.sampler_params(&base_id);
        if base.model.is_some() && last.model.is_some() && base.model != last.model {
            // Another checkpoint redrew the image (img2img, a refiner of its own): that pass is
            // the generation the image reports.
            return last;
        }
        let mut p = base.clone();
        p.prompt.clone_from(&last.prompt);
        p.negative_prompt.clone_from(&last.negative_prompt);
        p.model = last.model.clone().or(base.model);
        let hires = [
            ("hires seed", last.seed.map(|v| v.to_string())),
            ("hires steps", last.steps.map(|v| v.to_string())),
            ("hires cfg", last.cfg.map(|v| v.to_string())),
            ("hires sampler", last.sampler.clone()),
            ("hires size", last.width.zip(last.height).map(|(w, h)| format!("{w}x{h}"))),
            ("hires denoise", self.input(id, "denoise").and_then(|v| self.scalar(v, 0))),
        ];
        for (key, value) in hires {
            if let Some(value) = value {
                p.settings.insert(key.to_string(), value);
            }
        }
        p.settings.insert("sampler_node".into(), id.to_string());
        p.settings.insert("base_sampler_node".into(), base_id);
        p
    }

    /// The first pass behind final sampler `id`: the earliest sampler its latent came through
    /// (directly, or decoded, upscaled and encoded again); `None` when `id` is the only pass.
    fn base_pass(&self, id: &str) -> Option<String> {
        const LATENT_KEYS: [&str; 6] = ["latent_image", "samples", "latent", "pixels", "image", "images"];
        let mut base = None;
        let mut at = id.to_string();
        for _ in 0..MAX_DEPTH {
            let Some(up) = LATENT_KEYS.iter().find_map(|k| self.linked(&at, k)) else { break };
            if self.is_sampler(&up) {
                base = Some(up.clone());
            }
            at = up;
        }
        base
    }

    fn sampler_params(&self, id: &str) -> GenerationParams {
        let mut p = GenerationParams::new("comfyui", "");
        let guider = self.linked(id, "guider");
        let get = |key: &str| -> Option<String> {
            let from = |node: &str| self.input(node, key).and_then(|v| self.scalar(v, 0));
            from(id)
                .or_else(|| guider.as_deref().and_then(from))
                .or_else(|| self.linked(id, "noise").as_deref().and_then(from))
                .or_else(|| self.linked(id, "sigmas").as_deref().and_then(from))
                .or_else(|| self.linked(id, "sampler").as_deref().and_then(from))
        };
        p.seed = get("seed").or_else(|| get("noise_seed")).and_then(|s| json_i64(&Value::String(s)));
        p.steps = get("steps").and_then(|s| json_u32(&Value::String(s)));
        p.cfg = get("cfg").and_then(|s| json_f64(&Value::String(s)));
        p.sampler = get("sampler_name");
        p.scheduler = get("scheduler");
        let conditioning = |side: &str| -> Option<String> {
            let v =
                self.input(id, side).or_else(|| guider.as_deref().and_then(|g| self.input(g, side))).or_else(|| {
                    if side == "positive" {
                        guider.as_deref().and_then(|g| self.input(g, "conditioning"))
                    } else {
                        None
                    }
                })?;
            let (node, slot) = link(v)?;
            let mut texts = Texts::new();
            self.cond_texts(&node, slot, side, false, 0, &mut texts);
            pick_text(&texts)
        };
        p.prompt = conditioning("positive").filter(|t| !t.trim().is_empty());
        p.negative_prompt = conditioning("negative").filter(|t| !t.trim().is_empty());
        let model_from = self.linked(id, "model").or_else(|| guider.as_deref().and_then(|g| self.linked(g, "model")));
        p.model = model_from.and_then(|m| self.model_name(&m, 0));
        if let Some((w, h)) = self.linked(id, "latent_image").and_then(|l| self.latent_size(&l, 0)) {
            p.width = Some(w);
            p.height = Some(h);
        }
        p.settings.insert("sampler_node".into(), id.to_string());
        p
    }

    /// Collects the texts conditioning node `id` (output `slot`) was built from.
    fn cond_texts(&self, id: &str, slot: u64, side: &str, regional: bool, depth: usize, out: &mut Texts) {
        let Some(inputs) = self.inputs(id).filter(|_| depth < MAX_DEPTH && self.spend()) else {
            out.push((None, regional));
            return;
        };
        let class = self.class(id);
        if class == "ConditioningZeroOut" {
            out.push((Some(String::new()), regional));
            return;
        }
        if let Some(text) = inputs.get("populated_text") {
            out.push((self.text(text, 0), regional));
            return;
        }
        let is_encoder = class.contains("TextEncode") || class.contains("CLIPText") || inputs.contains_key("clip");
        if is_encoder && TEXT_KEYS.iter().any(|k| inputs.contains_key(*k)) {
            let texts: BTreeSet<Option<String>> = TEXT_KEYS
                .iter()
                .filter_map(|k| inputs.get(*k))
                .map(|v| self.text(v, 0))
                .filter(|t| t.as_deref() != Some(""))
                .collect();
            let text = match texts.len() {
                0 => Some(String::new()),
                1 => texts.into_iter().next().flatten(),
                // SDXL's text_g and text_l differ: no single prompt to report.
                _ => None,
            };
            out.push((text, regional));
            return;
        }
        let regional = regional || class.contains("SetArea") || class.contains("SetMask");
        // Nodes with both sides (ControlNetApplyAdvanced, InstructPix2Pix…): the slot says which.
        if inputs.contains_key("positive") && inputs.contains_key("negative") {
            let key = match slot {
                0 => "positive",
                1 => "negative",
                _ => side,
            };
            match inputs.get(key).and_then(link) {
                Some((up, s)) => self.cond_texts(&up, s, side, regional, depth + 1, out),
                None => out.push((None, regional)),
            }
            return;
        }
        let mut links: Vec<(String, u64)> =
            CONDITIONING_KEYS.iter().filter_map(|k| inputs.get(*k)).filter_map(link).collect();
        if links.is_empty() {
            // An unknown pass-through node with a single link (reroutes) is followed.
            let all: Vec<(String, u64)> = inputs.values().filter_map(link).collect();
            if all.len() == 1 {
                links = all;
            }
        }
        if links.is_empty() {
            out.push((None, regional));
        }
        for (up, s) in links {
            self.cond_texts(&up, s, side, regional, depth + 1, out);
        }
    }

    /// A text input: a literal, or text from a string/primitive/concatenate node.
    fn text(&self, v: &Value, depth: usize) -> Option<String> {
        if let Value::String(s) = v {
            return Some(s.clone());
        }
        let (id, slot) = link(v)?;
        let inputs = self.inputs(&id).filter(|_| depth < MAX_DEPTH && self.spend())?;
        // Switches pass on the input their selector picks: Impact Pack's `select` (1-based
        // `inputN`), Crystools' `boolean` (`on_true`/`on_false`).
        if let Some(n) =
            inputs.get("select").and_then(|s| self.scalar(s, depth + 1)).and_then(|s| s.parse::<u32>().ok())
        {
            return inputs.get(&format!("input{n}")).and_then(|v| self.text(v, depth + 1));
        }
        if let Some(on) = inputs.get("boolean").and_then(|b| self.scalar(b, depth + 1)) {
            let key = if on.eq_ignore_ascii_case("true") { "on_true" } else { "on_false" };
            return inputs.get(key).and_then(|v| self.text(v, depth + 1));
        }
        // Concatenation: the parts present, non-empty, joined by the node's separator.
        let concat = [
            (&["text1", "text2"][..], "separator"),
            (&["string_a", "string_b"][..], "delimiter"),
            (&["text_a", "text_b", "text_c", "text_d"][..], "delimiter"),
        ];
        for (parts, sep) in concat {
            if parts.iter().filter(|k| inputs.contains_key(**k)).count() >= 2 {
                let sep = inputs.get(sep).and_then(|s| self.text(s, depth + 1)).unwrap_or_default();
                let sep = if sep == "\\n" { "\n".to_string() } else { sep };
                let texts: Option<Vec<String>> =
                    parts.iter().filter_map(|k| inputs.get(*k)).map(|v| self.text(v, depth + 1)).collect();
                return Some(texts?.into_iter().filter(|p| !p.trim().is_empty()).collect::<Vec<_>>().join(&sep));
            }
        }
        // Nodes with several text outputs say which by the slot (WAS `Text String`).
        if let Some(v) = ["text", "text_b", "text_c", "text_d"].get(slot as usize).and_then(|k| inputs.get(*k))
            && slot > 0
        {
            return self.text(v, depth + 1);
        }
        // A node holding text: its own (a prompt node, a primitive), or, for a node that made
        // text at run time (an LLM "prompt enhancer", whose output is not stored), the user's
        // text it was given.
        TEXT_SOURCE_KEYS.iter().find_map(|k| inputs.get(*k)).and_then(|v| self.text(v, depth + 1))
    }

    /// A scalar input as text: a literal, or the value of a primitive/seed node it links to.
    fn scalar(&self, v: &Value, depth: usize) -> Option<String> {
        if let Some(s) = json_string(v) {
            return Some(s);
        }
        if let Value::Bool(b) = v {
            return Some(b.to_string());
        }
        let (id, _) = link(v)?;
        let inputs = self.inputs(&id).filter(|_| depth < MAX_DEPTH)?;
        let keys = [
            "seed",
            "noise_seed",
            "value",
            "int",
            "float",
            "number",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "ckpt_name",
            "text",
            "string",
            "boolean",
        ];
        keys.iter().find_map(|k| inputs.get(*k)).and_then(|v| self.scalar(v, depth + 1))
    }

    /// The checkpoint behind a MODEL link, through LoRA/hypernetwork/patch nodes.
    fn model_name(&self, id: &str, depth: usize) -> Option<String> {
        let inputs = self.inputs(id).filter(|_| depth < MAX_DEPTH)?;
        if let Some(name) =
            ["ckpt_name", "unet_name"].iter().find_map(|k| inputs.get(*k)).and_then(|v| self.scalar(v, 0))
        {
            return Some(name);
        }
        let up = self.linked(id, "model")?;
        self.model_name(&up, depth + 1)
    }

    /// The latent size: from the node that made or resized the latent, through samplers.
    fn latent_size(&self, id: &str, depth: usize) -> Option<(u32, u32)> {
        let inputs = self.inputs(id).filter(|_| depth < MAX_DEPTH)?;
        let int = |k: &str| inputs.get(k).and_then(|v| self.scalar(v, 0)).and_then(|s| s.parse::<u32>().ok());
        if let (Some(w), Some(h)) = (int("width"), int("height"))
            && w > 0
            && h > 0
        {
            return Some((w, h));
        }
        let up = ["samples", "latent_image", "latent"].iter().find_map(|k| self.linked(id, k))?;
        let (w, h) = self.latent_size(&up, depth + 1)?;
        match inputs.get("scale_by").and_then(|v| self.scalar(v, 0)).and_then(|s| s.parse::<f64>().ok()) {
            Some(s) if s.is_finite() && s > 0.0 => Some(((f64::from(w) * s) as u32, (f64::from(h) * s) as u32)),
            Some(_) => None,
            None => Some((w, h)),
        }
    }
}

/// One prompt from the texts reached: any unfollowable branch makes it unknown; area/mask texts
/// give way to the single global text; several different global texts are ambiguous.
fn pick_text(texts: &Texts) -> Option<String> {
    if texts.is_empty() || texts.iter().any(|(t, _)| t.is_none()) {
        return None;
    }
    let distinct = |regional: bool| -> BTreeSet<&str> {
        texts
            .iter()
            .filter(|(_, r)| *r == regional)
            .filter_map(|(t, _)| t.as_deref())
            .filter(|t| !t.trim().is_empty())
            .collect()
    };
    let global = distinct(false);
    let chosen = if global.is_empty() { distinct(true) } else { global };
    match chosen.len() {
        0 => Some(String::new()),
        1 => chosen.into_iter().next().map(str::to_string),
        _ => None,
    }
}

/// Keeps in `p` only what `other` agrees with.
fn agree(p: &mut GenerationParams, other: &GenerationParams) {
    fn keep<T: PartialEq>(a: &mut Option<T>, b: &Option<T>) {
        if a != b {
            *a = None;
        }
    }
    keep(&mut p.prompt, &other.prompt);
    keep(&mut p.negative_prompt, &other.negative_prompt);
    keep(&mut p.model, &other.model);
    keep(&mut p.seed, &other.seed);
    keep(&mut p.steps, &other.steps);
    keep(&mut p.sampler, &other.sampler);
    keep(&mut p.scheduler, &other.scheduler);
    keep(&mut p.cfg, &other.cfg);
    keep(&mut p.width, &other.width);
    keep(&mut p.height, &other.height);
}

/// Widget names, in `widgets_values` order, of the nodes whose values matter here.
fn widget_names(class: &str) -> &'static [&'static str] {
    match class {
        "KSampler" => &["seed", "*control", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
        "KSamplerAdvanced" => &[
            "add_noise",
            "noise_seed",
            "*control",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "start_at_step",
            "end_at_step",
            "return_with_leftover_noise",
        ],
        "CLIPTextEncode" => &["text"],
        "CLIPTextEncodeSDXL" => {
            &["width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "text_l"]
        }
        "CheckpointLoaderSimple" => &["ckpt_name"],
        "CheckpointLoader" => &["config_name", "ckpt_name"],
        "UNETLoader" => &["unet_name", "weight_dtype"],
        "EmptyLatentImage" | "EmptySD3LatentImage" => &["width", "height", "batch_size"],
        "LatentUpscale" => &["upscale_method", "width", "height", "crop"],
        "PrimitiveNode" => &["value", "*control"],
        "RandomNoise" => &["noise_seed", "*control"],
        "KSamplerSelect" => &["sampler_name"],
        "BasicScheduler" => &["scheduler", "steps", "denoise"],
        "CFGGuider" => &["cfg"],
        _ => &[],
    }
}

/// Rebuilds `{id: {class_type, inputs}}` from a UI graph; muted and bypassed nodes are left out.
fn workflow_to_api(workflow: &Map<String, Value>) -> Option<Map<String, Value>> {
    let nodes = workflow.get("nodes")?.as_array()?;
    let mut links = std::collections::HashMap::new();
    for l in workflow.get("links").and_then(Value::as_array).into_iter().flatten() {
        if let Some(l) = l.as_array()
            && let (Some(id), Some(from), Some(slot)) =
                (l.first().and_then(Value::as_u64), l.get(1).and_then(json_string), l.get(2).and_then(Value::as_u64))
        {
            links.insert(id, (from, slot));
        }
    }
    let mut graph = Map::new();
    for node in nodes {
        let (Some(id), Some(class)) = (node.get("id").and_then(json_string), node.get("type").and_then(Value::as_str))
        else {
            continue;
        };
        if matches!(node.get("mode").and_then(Value::as_u64), Some(2 | 4)) {
            continue;
        }
        let mut inputs = Map::new();
        let mut widgets = node.get("widgets_values").and_then(Value::as_array).into_iter().flatten().peekable();
        for name in widget_names(class) {
            if let Some(control) = name.strip_prefix('*') {
                let is_control = widgets
                    .peek()
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| matches!(s, "fixed" | "increment" | "decrement" | "randomize"));
                if is_control {
                    widgets.next();
                }
                let _ = control;
                continue;
            }
            match widgets.next() {
                Some(v) => {
                    inputs.insert((*name).to_string(), v.clone());
                }
                None => break,
            }
        }
        for input in node.get("inputs").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(name), Some(l)) =
                (input.get("name").and_then(Value::as_str), input.get("link").and_then(Value::as_u64))
                && let Some((from, slot)) = links.get(&l)
            {
                inputs.insert(name.to_string(), serde_json::json!([from, slot]));
            }
        }
        graph.insert(id, serde_json::json!({"class_type": class, "inputs": inputs}));
    }
    Some(graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(graph: Value) -> GenerationParams {
        parse_comfyui_prompt(&graph.to_string()).unwrap()
    }

    /// A sampler whose positive and negative encoders take their text from `positive`/`negative`
    /// links, with the given source nodes added.
    fn through(positive: Value, negative: Value, sources: Value) -> Value {
        let mut g = serde_json::json!({
            "10:3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 30, "cfg": 4.0, "sampler_name": "euler",
                "positive": ["10:6", 0], "negative": ["10:7", 0], "model": ["4", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768}},
            "10:6": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": ["4", 1]}},
            "10:7": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}},
        });
        for (k, v) in sources.as_object().unwrap() {
            g[k] = v.clone();
        }
        g
    }

    #[test]
    fn text_through_switches_concatenation_prompt_nodes_and_llm_nodes() {
        let g = through(
            serde_json::json!(["20", 0]),
            serde_json::json!(["30", 3]),
            serde_json::json!({
                "20": {"class_type": "StringConcatenate", "inputs": {"string_a": ["21", 0], "string_b": "masterpiece", "delimiter": ", "}},
                "21": {"class_type": "ImpactSwitch", "inputs": {"select": ["22", 0], "sel_mode": false, "input1": "a dog", "input2": ["23", 0]}},
                "22": {"class_type": "PrimitiveInt", "inputs": {"value": 2}},
                "23": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a cat on a roof"}},
                "30": {"class_type": "Power Prompt (rgthree)", "inputs": {"prompt": "lowres, blurry", "opt_clip": ["4", 1]}},
            }),
        );
        let p = parse(g);
        assert_eq!(p.prompt.as_deref(), Some("a cat on a roof, masterpiece"));
        assert_eq!(p.negative_prompt.as_deref(), Some("lowres, blurry"));
        assert_eq!((p.seed, p.steps, p.width), (Some(7), Some(30), Some(512)));

        let g = through(
            serde_json::json!(["40", 0]),
            serde_json::json!(["50", 0]),
            serde_json::json!({
                // An LLM rewrote the user's text at run time; the rewrite is not stored.
                "40": {"class_type": "OllamaGenerate", "inputs": {"prompt": ["41", 0], "model": "llama3"}},
                "41": {"class_type": "Text Multiline", "inputs": {"text": "a castle at dusk"}},
                "50": {"class_type": "Switch any [Crystools]", "inputs": {"boolean": false, "on_true": "x", "on_false": ["51", 0]}},
                "51": {"class_type": "Text Concatenate", "inputs": {"text_a": "ugly", "text_b": "", "text_c": "bad hands", "delimiter": "\\n", "clean_whitespace": "true"}},
            }),
        );
        let mut hunyuan = g.clone();
        let p = parse(g);
        assert_eq!(p.prompt.as_deref(), Some("a castle at dusk"));
        assert_eq!(p.negative_prompt.as_deref(), Some("ugly\nbad hands"));
        // Encoders with other input names: HunyuanDiT's bert/mt5xl, Qwen-Image's prompt.
        hunyuan["10:6"] = serde_json::json!({"class_type": "CLIPTextEncodeHunyuanDiT", "inputs": {"bert": "a red kite", "mt5xl": "a red kite", "clip": ["4", 1]}});
        hunyuan["10:7"] = serde_json::json!({"class_type": "TextEncodeQwenImageEdit", "inputs": {"prompt": "dark", "clip": ["4", 1]}});
        let p = parse(hunyuan);
        assert_eq!((p.prompt.as_deref(), p.negative_prompt.as_deref()), (Some("a red kite"), Some("dark")));
    }

    fn simple() -> Value {
        serde_json::json!({
            "3": {"class_type": "KSampler", "inputs": {"seed": 1102676403634909u64, "steps": 20, "cfg": 8.0, "sampler_name": "dpmpp_2m", "scheduler": "normal", "denoise": 1.0, "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.ckpt"}},
            "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "x.safetensors"}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "best high quality\n(cat:1.2) sitting on a log", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
            "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}}
        })
    }

    #[test]
    fn simple_graph() {
        let p = parse(simple());
        assert_eq!(p.generator.as_deref(), Some("comfyui"));
        assert_eq!(p.prompt.as_deref(), Some("best high quality\n(cat:1.2) sitting on a log"));
        assert_eq!(p.negative_prompt.as_deref(), Some("blurry"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(1102676403634909), Some(20), Some(8.0)));
        assert_eq!((p.sampler.as_deref(), p.scheduler.as_deref()), (Some("dpmpp_2m"), Some("normal")));
        assert_eq!(p.model.as_deref(), Some("model.ckpt"));
        assert_eq!((p.width, p.height), (Some(512), Some(768)));
    }

    #[test]
    fn nan_and_text_from_primitive_and_reroute() {
        let mut g = simple();
        g["3"]["inputs"]["positive"] = serde_json::json!(["20", 0]);
        g["20"] = serde_json::json!({"class_type": "Reroute", "inputs": {"input": ["21", 0]}});
        g["21"] = serde_json::json!({"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["6", 0], "start": 0.0}});
        g["6"]["inputs"]["text"] = serde_json::json!(["22", 0]);
        g["22"] = serde_json::json!({"class_type": "PrimitiveString", "inputs": {"value": "from a primitive"}});
        g["3"]["inputs"]["seed"] = serde_json::json!(["23", 0]);
        g["23"] = serde_json::json!({"class_type": "Seed (rgthree)", "inputs": {"seed": 77}});
        let text = g.to_string().replace("\"denoise\":1.0", "\"denoise\":NaN");
        let p = parse_comfyui_prompt(&text).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("from a primitive"));
        assert_eq!(p.seed, Some(77));
    }

    #[test]
    fn area_composition_keeps_the_global_text_and_final_sampler_wins() {
        let mut g = simple();
        g["3"]["inputs"]["positive"] = serde_json::json!(["30", 0]);
        g["30"] = serde_json::json!({"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["31", 0], "conditioning_2": ["6", 0]}});
        g["31"] = serde_json::json!({"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["32", 0], "width": 64}});
        g["32"] =
            serde_json::json!({"class_type": "CLIPTextEncode", "inputs": {"text": "night sky", "clip": ["4", 1]}});
        assert_eq!(parse(g.clone()).prompt.as_deref(), Some("best high quality\n(cat:1.2) sitting on a log"));
        // A second pass fed by the first is the final one.
        g["40"] = serde_json::json!({"class_type": "KSampler", "inputs": {"seed": 9, "steps": 14, "cfg": 7.0, "sampler_name": "euler", "scheduler": "simple", "model": ["4", 0], "positive": ["41", 0], "negative": ["7", 0], "latent_image": ["42", 0]}});
        g["41"] = serde_json::json!({"class_type": "CLIPTextEncode", "inputs": {"text": "pass two", "clip": ["4", 1]}});
        g["42"] =
            serde_json::json!({"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 1.5}});
        g["8"]["inputs"]["samples"] = serde_json::json!(["40", 0]);
        let p = parse(g.clone());
        // The prompt of the pass that made the image; seed, steps, CFG and size of the base pass
        // (as A1111 reports a hires fix), the second pass's values beside them.
        assert_eq!(p.prompt.as_deref(), Some("pass two"));
        assert_eq!((p.seed, p.steps, p.cfg), (Some(1102676403634909), Some(20), Some(8.0)));
        assert_eq!((p.width, p.height), (Some(512), Some(768)));
        let hires = |k: &str| p.settings.get(k).map(String::as_str);
        assert_eq!(
            (hires("hires seed"), hires("hires steps"), hires("hires size")),
            (Some("9"), Some("14"), Some("768x1152"))
        );
        // A pixel-space upscale between the passes (decode, scale, encode) is followed too.
        g["42"] = serde_json::json!({"class_type": "VAEEncode", "inputs": {"pixels": ["43", 0], "vae": ["4", 2]}});
        g["43"] = serde_json::json!({"class_type": "ImageScaleBy", "inputs": {"image": ["44", 0], "scale_by": 2.0}});
        g["44"] = serde_json::json!({"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}});
        let p = parse(g.clone());
        assert_eq!((p.prompt.as_deref(), p.seed, p.steps), (Some("pass two"), Some(1102676403634909), Some(20)));
        assert_eq!(p.settings.get("hires steps").map(String::as_str), Some("14"));
        // A second pass with a checkpoint of its own redrew the image: it is the generation.
        g["45"] =
            serde_json::json!({"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}});
        g["40"]["inputs"]["model"] = serde_json::json!(["45", 0]);
        let p = parse(g);
        assert_eq!((p.seed, p.steps, p.model.as_deref()), (Some(9), Some(14), Some("other.safetensors")));
        assert!(!p.settings.contains_key("hires steps"));
    }

    #[test]
    fn ambiguous_or_unknown_gives_none() {
        let mut g = simple();
        g["3"]["inputs"]["positive"] = serde_json::json!(["30", 0]);
        g["30"] = serde_json::json!({"class_type": "ConditioningConcat", "inputs": {"conditioning_to": ["6", 0], "conditioning_from": ["7", 0]}});
        assert_eq!(parse(g.clone()).prompt, None);
        g["30"] = serde_json::json!({"class_type": "MysteryNode", "inputs": {"a": ["6", 0], "b": ["7", 0]}});
        assert_eq!(parse(g.clone()).prompt, None);
        g["3"]["inputs"]["positive"] = serde_json::json!(["99", 0]);
        let p = parse(g);
        assert_eq!((p.prompt, p.seed), (None, Some(1102676403634909)));
    }

    #[test]
    fn sdxl_flux_and_custom_sampler() {
        let g = serde_json::json!({
            "1": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["2", 0], "guider": ["3", 0], "sampler": ["4", 0], "sigmas": ["5", 0], "latent_image": ["9", 0]}},
            "2": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
            "3": {"class_type": "BasicGuider", "inputs": {"model": ["8", 0], "conditioning": ["6", 0]}},
            "4": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
            "5": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 28, "model": ["8", 0]}},
            "6": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["7", 0], "guidance": 3.5}},
            "7": {"class_type": "CLIPTextEncodeFlux", "inputs": {"clip_l": "a fox", "t5xxl": "a fox", "guidance": 3.5, "clip": ["8", 1]}},
            "8": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
            "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024}}
        });
        let p = parse(g);
        assert_eq!(p.prompt.as_deref(), Some("a fox"));
        assert_eq!(
            (p.seed, p.steps, p.sampler.as_deref(), p.scheduler.as_deref()),
            (Some(42), Some(28), Some("euler"), Some("simple"))
        );
        assert_eq!(p.model.as_deref(), Some("flux1-dev.safetensors"));
        let mut sdxl = simple();
        sdxl["6"] = serde_json::json!({"class_type": "CLIPTextEncodeSDXL", "inputs": {"text_g": "g text", "text_l": "l text", "clip": ["4", 1]}});
        assert_eq!(parse(sdxl.clone()).prompt, None);
        sdxl["6"]["inputs"]["text_l"] = serde_json::json!("");
        assert_eq!(parse(sdxl).prompt.as_deref(), Some("g text"));
    }

    #[test]
    fn hostile_diamond_graph_finishes_quickly() {
        let mut g = simple();
        // 60 levels of combine nodes each feeding both inputs of the next: 2^60 paths.
        g["100"] =
            serde_json::json!({"class_type": "CLIPTextEncode", "inputs": {"text": ["200", 0], "clip": ["4", 1]}});
        g["200"] = serde_json::json!({"class_type": "StringConcatenate", "inputs": {"string_a": "x", "string_b": "y", "delimiter": " "}});
        for i in 101..160 {
            g[i.to_string()] = serde_json::json!({"class_type": "ConditioningCombine", "inputs": {"conditioning_1": [(i - 1).to_string(), 0], "conditioning_2": [(i - 1).to_string(), 0]}});
        }
        for i in 201..260 {
            g[i.to_string()] = serde_json::json!({"class_type": "StringConcatenate", "inputs": {"string_a": [(i - 1).to_string(), 0], "string_b": [(i - 1).to_string(), 0], "delimiter": ""}});
        }
        g["100"]["inputs"]["text"] = serde_json::json!(["259", 0]);
        g["3"]["inputs"]["positive"] = serde_json::json!(["159", 0]);
        let started = std::time::Instant::now();
        let p = parse(g);
        assert_eq!(p.prompt, None);
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn malformed_graphs_do_not_panic() {
        for text in [
            "",
            "{",
            "[]",
            "{\"1\": 5}",
            "{\"1\": {\"class_type\": 3}}",
            r#"{"1": {"class_type": "KSampler", "inputs": {"positive": ["1", 0], "negative": [1], "model": ["1", 0], "latent_image": ["1", 0]}}}"#,
        ] {
            let _ = parse_comfyui_prompt(text);
            let _ = parse_comfyui_workflow(text);
        }
        assert_eq!(parse_comfyui_prompt(r#"{"a": {"b": 1}}"#), None);
    }

    #[test]
    fn workflow_fallback() {
        let wf = serde_json::json!({
            "nodes": [
                {"id": 3, "type": "KSampler", "mode": 0, "widgets_values": [156680208700286u64, "randomize", 20, 8, "euler", "normal", 1], "inputs": [{"name": "model", "link": 1}, {"name": "positive", "link": 4}, {"name": "negative", "link": 6}, {"name": "latent_image", "link": 2}]},
                {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["v1-5.ckpt"]},
                {"id": 5, "type": "EmptyLatentImage", "mode": 0, "widgets_values": [512, 640, 1]},
                {"id": 6, "type": "CLIPTextEncode", "mode": 0, "widgets_values": ["a house"], "inputs": [{"name": "clip", "link": 3}]},
                {"id": 7, "type": "CLIPTextEncode", "mode": 0, "widgets_values": ["ugly"], "inputs": [{"name": "clip", "link": 5}]},
                {"id": 9, "type": "CLIPTextEncode", "mode": 4, "widgets_values": ["bypassed"]}
            ],
            "links": [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "CONDITIONING"]]
        });
        let p = parse_comfyui_workflow(&wf.to_string()).unwrap();
        assert_eq!((p.prompt.as_deref(), p.negative_prompt.as_deref()), (Some("a house"), Some("ugly")));
        assert_eq!(
            (p.seed, p.steps, p.cfg, p.sampler.as_deref()),
            (Some(156680208700286), Some(20), Some(8.0), Some("euler"))
        );
        assert_eq!((p.model.as_deref(), p.width, p.height), (Some("v1-5.ckpt"), Some(512), Some(640)));
    }
}
