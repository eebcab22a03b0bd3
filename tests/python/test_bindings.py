"""The Python module against the reference fixtures, the C++ library and the CLI."""
import json
import os
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest

import gemma3

TEXT = ["text-tiny-a", "text-tiny-b"]


def manifest(case_dir):
    return json.loads((case_dir / "manifest.json").read_text())


def prompts(case_dir):
    return [p["index"] for p in manifest(case_dir)["prompts"]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", TEXT + ["mm-tiny-a"])
def test_fixtures_within_1e4_argmax_equal(data_dir, case, dtype):
    case_dir = data_dir / "reference" / case
    model = gemma3.Model(case_dir, dtype=dtype)
    assert model.dtype == dtype
    for k, prompt in zip(prompts(case_dir), manifest(case_dir)["prompts"]):
        ids = np.load(case_dir / f"p{k}_input_ids.npy").ravel()
        images = [case_dir / f for f in prompt.get("images", [])]
        out = model.forward(ids, images=images or None)
        expected = np.load(case_dir / f"p{k}_logits.npy").reshape(out["logits"].shape)
        assert out["logits"].dtype == np.dtype(dtype)
        assert np.max(np.abs(out["logits"] - expected)) <= 1e-4, (case, k)
        assert np.array_equal(out["logits"].argmax(-1), expected.argmax(-1))


def test_capture_is_bit_identical_to_the_cpp_observer(data_dir, cli, tmp_path):
    """`gemma3 dump --all` writes what the C++ Capture saw; the module's capture is the same."""
    case_dir = data_dir / "reference" / "text-tiny-a"
    ids = [2, 18, 79, 100, 7, 300, 41]
    for ablate in [None, "model.layers.2.self_attn.attn_output"]:
        out_dir = tmp_path / (ablate or "plain")
        cmd = [cli, "dump", "--model", str(case_dir), "--ids", ",".join(map(str, ids)),
               "--out", str(out_dir), "--all"]
        if ablate:
            cmd += ["--ablate", ablate]
        subprocess.run(cmd, check=True, capture_output=True)

        def zero(view, info):
            view[...] = 0

        r = gemma3.Model(case_dir).forward(ids, capture="all",
                                           edits={ablate: zero} if ablate else None)
        compared = 0
        for site, value in r["captured"].items():
            cpp = np.load(out_dir / f"{site}.npy")
            assert np.array_equal(value.reshape(cpp.shape), cpp), site
            compared += 1
        assert compared > 100
        assert np.array_equal(r["logits"], np.load(out_dir / "logits.npy").reshape(r["logits"].shape))
        if ablate:
            assert not r["captured"][ablate].any()


def test_edits_change_the_forward_pass_and_observing_does_not(data_dir):
    model = gemma3.Model(data_dir / "reference" / "text-tiny-a")
    ids = [2, 18, 79, 100, 7]
    plain = model.forward(ids)["logits"]
    observed = model.forward(ids, capture="all")["logits"]
    assert np.array_equal(plain, observed)
    seen = []

    def steer(view, info):
        seen.append(info["pos0"])
        return view + 1.0  # a returned array replaces the site's values

    edited = model.forward(ids, edits={"model.layers.1": steer},
                           capture=["model.layers.1"])
    assert seen == [0]
    assert np.max(np.abs(edited["logits"] - plain)) > 1e-3
    again = model.forward(ids, capture=["model.layers.1"])["captured"]["model.layers.1"]
    assert np.allclose(edited["captured"]["model.layers.1"], again + 1.0)
    with pytest.raises(ValueError, match="must return None or an array of shape"):
        model.forward(ids, edits={"model.layers.1": lambda v, i: np.zeros((2, 2))})
    with pytest.raises(ZeroDivisionError):
        model.forward(ids, edits={"model.layers.1": lambda v, i: 1 / 0})


def test_logit_rows_and_vision_sites(data_dir, tmp_path):
    case_dir = data_dir / "reference" / "mm-tiny-a"
    model = gemma3.Model(case_dir)
    ids = np.load(case_dir / "p0_input_ids.npy").ravel()
    image = case_dir / "image0.png"
    full = model.forward(ids, images=[image])["logits"]
    last = model.forward(ids, images=[image], logits="last")["logits"]
    # (one row runs the LM head as a GEMV, many as a GEMM: the same sums in another order)
    assert np.max(np.abs(last[0] - full[-1])) <= 1e-5
    assert model.forward(ids, images=[image], logits="none")["logits"].shape[0] == 0
    some = model.forward(ids, images=[image], logits=[0, 3])["logits"]
    assert np.max(np.abs(some - full[[0, 3]])) <= 1e-5
    # An image as an array equals the same pixels as a file; its vision sites are captured.
    pixels = np.random.default_rng(1).integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    write_png(pixels, tmp_path / "random.png")
    from_file = model.forward(ids, images=[tmp_path / "random.png"])["logits"]
    r = model.forward(ids, images=[pixels],
                      capture=["vision_tower.vision_model.post_layernorm", "multi_modal_projector"])
    assert np.array_equal(r["logits"], from_file)
    assert np.max(np.abs(r["logits"] - full)) > 1e-4  # another image, another answer
    soft = model.encode_image(pixels)
    assert len(soft) == 1 and soft[0].shape == (model.mm_tokens_per_image, model.hidden_size)
    assert np.array_equal(r["captured"]["multi_modal_projector"], soft[0])


def write_png(pixels, path):
    """An H x W x 3 uint8 array as an 8-bit RGB PNG (no filtering), for the decoder to read."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_tokenizer_and_chat_template(tokenizer_path):
    tok = gemma3.Tokenizer(tokenizer_path)
    ids = tok.encode("Hello world", add_bos=True)
    assert ids[0] == tok.bos == 2
    assert tok.decode(ids, skip_special=True) == "Hello world"
    assert tok.decode(np.array(ids, dtype=np.int64), skip_special=True) == "Hello world"
    chat = tok.render_chat([{"role": "user", "content": "Hi"}])
    assert tok.decode(chat) == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_seeded_generation_equals_the_cli(data_dir, cli, tokenizer_path, tmp_path):
    ck = tmp_path / "tiny"
    subprocess.run([cli, "synth", "--preset", "tiny", "--seed", "5", "--out", str(ck),
                    "--tokenizer", tokenizer_path], check=True, capture_output=True)
    out = subprocess.run([cli, "run", "--model", str(ck), "--prompt", "Why is the sky blue?",
                          "--max-new-tokens", "12", "--seed", "7", "--json"],
                         check=True, capture_output=True, text=True).stdout
    expected = json.loads(out)
    model, tok = gemma3.Model(ck), gemma3.Tokenizer(tokenizer_path)
    session = gemma3.Session(model, tok, seed=7, top_logprobs=2)
    prompt = tok.render_chat([{"role": "user", "content": "Why is the sky blue?"}])
    gen = session.generate(prompt, max_new_tokens=12)
    tokens = list(gen)
    assert [t["id"] for t in tokens][:len(expected["ids"])] == expected["ids"]
    assert gen.result["ids"] == expected["ids"]
    assert gen.result["text"] == expected["text"]
    assert all(t["logprob"] <= 0 and len(t["top"]) == 2 for t in tokens)
    # A chat turn, then another: the session keeps its cache.
    chat = gemma3.Session(model, tok, seed=1)
    first = list(chat.chat("Hello!", max_new_tokens=4))
    used = len(chat.tokens)
    list(chat.chat("Tell me more.", max_new_tokens=4))
    assert len(first) >= 1 and len(chat.tokens) > used
    # Closing a generation early stops it.
    g = gemma3.Session(model, tok, seed=3).generate(prompt, max_new_tokens=50)
    next(g)
    g.close()
    assert g.result["reason"] == "callback"


def test_sessions_on_one_model_from_several_threads(tokenizer_path, cli, tmp_path):
    ck = tmp_path / "tiny"
    subprocess.run([cli, "synth", "--preset", "tiny", "--seed", "9", "--out", str(ck)],
                   check=True, capture_output=True)
    model, tok = gemma3.Model(ck), gemma3.Tokenizer(tokenizer_path)
    prompt = tok.render_chat([{"role": "user", "content": "Count to ten."}])
    alone = [t["id"] for t in gemma3.Session(model, tok, seed=11).generate(prompt, max_new_tokens=16)]
    results, errors = [None] * 4, []

    def worker(i):
        try:
            s = gemma3.Session(model, tok, seed=11)
            results[i] = [t["id"] for t in s.generate(prompt, max_new_tokens=16)]
            model.forward(prompt)  # forward passes interleaved with the generations
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == alone for r in results)


def test_score(data_dir, tokenizer_path):
    model = gemma3.Model(data_dir / "reference" / "text-tiny-a")
    ids = [2, 18, 79, 100, 7]
    scores = model.score(ids, top=3)
    logits = model.forward(ids)["logits"].astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    assert [s["position"] for s in scores] == [1, 2, 3, 4]
    for s in scores:
        assert abs(s["logprob"] - logp[s["position"] - 1, s["id"]]) < 1e-5
        assert len(s["top"]) == 3


def test_bad_input_raises_the_right_exception(data_dir, tmp_path):
    model = gemma3.Model(data_dir / "reference" / "text-tiny-a")
    with pytest.raises(TypeError, match="integer token ids"):
        model.forward(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        model.forward(np.array([[2, 3]]))
    with pytest.raises(TypeError, match="sequence of integer token ids"):
        model.forward("2 3")
    with pytest.raises(gemma3.InvalidArgument, match="outside the vocabulary"):
        model.forward([2, 100000])
    with pytest.raises(ValueError, match="names no site"):
        model.forward([2, 3], capture=["model.layers.99.nonsense"])
    with pytest.raises(TypeError, match="not callable"):
        model.forward([2, 3], edits={"model.layers.0": 3})
    with pytest.raises(gemma3.IoError, match="nowhere"):
        gemma3.Model(tmp_path / "nowhere")
    with pytest.raises(gemma3.InvalidArgument, match="dtype"):
        gemma3.Model(data_dir / "reference" / "text-tiny-a", dtype="float16")
    with pytest.raises(gemma3.InvalidArgument, match="backend"):
        gemma3.Model(data_dir / "reference" / "text-tiny-a", backend="gpu")
    mm = gemma3.Model(data_dir / "reference" / "mm-tiny-a")
    with pytest.raises(TypeError, match="uint8"):
        mm.encode_image(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        mm.encode_image(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(gemma3.IoError):
        mm.encode_image(tmp_path / "missing.png")
    with pytest.raises(gemma3.InvalidArgument, match="no vision tower"):
        model.encode_image(np.zeros((8, 8, 3), dtype=np.uint8))
    # The library's errors are one line, and catchable as gemma3.Error.
    try:
        gemma3.Model(tmp_path / "nowhere")
    except gemma3.Error as e:
        assert "\n" not in str(e) and str(tmp_path / "nowhere") in str(e)


def test_gguf_loads_like_the_directory(data_dir, cli, tmp_path):
    case_dir = data_dir / "reference" / "text-tiny-a"
    gguf = tmp_path / "tiny.gguf"
    subprocess.run([cli, "convert", "--model", str(case_dir), "--out", str(gguf), "--type", "f32"],
                   check=True, capture_output=True)
    ids = [2, 18, 79, 100]
    a = gemma3.Model(case_dir).forward(ids)["logits"]
    b = gemma3.Model(gguf).forward(ids)["logits"]
    assert np.max(np.abs(a - b)) <= 1e-5


def test_gguf_with_its_mmproj_sees_images_like_the_directory(data_dir, cli, tokenizer_path,
                                                             tmp_path):
    # A tiny multimodal checkpoint with the real vocabulary (which holds the image token ids), held
    # as llama.cpp holds it: a text GGUF and a vision projector (mmproj) GGUF.
    mm = tmp_path / "mm"
    subprocess.run([cli, "synth", "--preset", "tiny-mm", "--out", str(mm), "--tokenizer",
                    tokenizer_path], check=True, capture_output=True)
    subprocess.run([cli, "convert", "--model", str(mm), "--out", str(tmp_path / "mm.gguf"),
                    "--mmproj", str(tmp_path / "mm.mmproj.gguf"), "--type", "f32"],
                   check=True, capture_output=True)
    image = data_dir / "reference" / "mm-tiny-a" / "image0.png"
    a = gemma3.Model(mm).encode_image(image)[0]
    b = gemma3.Model(tmp_path / "mm.gguf", mmproj=tmp_path / "mm.mmproj.gguf").encode_image(image)[0]
    assert np.max(np.abs(a - b)) <= 1e-5
    # The GGUF is its own tokenizer: the same ids as the tokenizer.model it was written from.
    text = "<start_of_image> Ünïcode, tabs\t and 12345 digits"
    from_gguf, from_model = gemma3.Tokenizer(tmp_path / "mm.gguf"), gemma3.Tokenizer(tokenizer_path)
    assert from_gguf.encode(text, parse_special=True) == from_model.encode(text, parse_special=True)
    # (the file's vocabulary is padded to the model's vocab_size, as llama.cpp's converter pads it)
    assert from_gguf.vocab_size >= from_model.vocab_size


FAULTS_OF_REPEATED_FORWARDS = """
import resource, sys
import numpy as np
import gemma3
model = gemma3.Model(sys.argv[1])
if sys.argv[2] == "keep":
    assert gemma3.keep_freed_memory() is True
ids = np.arange(2000) % 500 + 2  # activations well above glibc's 128 KiB mmap threshold
model.forward(ids, logits="last")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.forward(ids, logits="last")
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_stops_repeated_forwards_faulting_their_pages_in(data_dir):
    # glibc's defaults for the "default" run: no inherited tunables (the README suggests some).
    env = {k: v for k, v in os.environ.items()
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}

    def faults(mode):
        run = subprocess.run(
            [sys.executable, "-c", FAULTS_OF_REPEATED_FORWARDS,
             str(data_dir / "reference" / "text-tiny-a"), mode],
            check=True, capture_output=True, text=True, env=env)
        return int(run.stdout)

    default, kept = faults("default"), faults("keep")
    # Measured: 597 page faults over the five calls by default, none with the blocks kept.
    assert default >= 100
    assert kept * 10 <= default
