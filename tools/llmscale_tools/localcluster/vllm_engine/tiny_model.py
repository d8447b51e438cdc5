"""Write a tiny random-weight Llama that real vLLM serves on CPU: no download, ~10 s, ~4 MB.

Run with the Python of the vLLM environment (it needs torch, transformers and tokenizers):
    <vllm-env>/bin/python tiny_model.py OUTPUT_DIR [--hidden-size N] [--layers N]
This file imports nothing from llmscale: the vLLM environment does not have it.

The model: LlamaForCausalLM, hidden 256, 2 layers, 4 attention heads (64 per head), vocabulary
2048, context 2048, float32 weights drawn with a fixed seed. The tokenizer: byte-level BPE
trained here on text this script writes itself (so every byte sequence encodes), with the
special tokens <|begin_of_text|>, <|eot_id|> (end of sequence) and <|pad|>, and a chat
template of Llama-3 style headers. The answers are random tokens: the point is vLLM's
serving behaviour (API, streaming, metrics, start-up), not the text.

`--hidden-size` and `--layers` make a slower model of the same kind (heads stay 64 wide), for
measurements whose latencies must dwarf a load generator's own overhead (docs/bench.md: hidden
512 and 8 layers take ~65 ms to the first token of a 200-token prompt and ~10 ms per token on
one CPU core; the default model ~8 and ~2 ms).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

VOCAB_SIZE = 2048
HIDDEN_SIZE = 256
LAYERS = 2
HEADS = 4
HEAD_SIZE = HIDDEN_SIZE // HEADS
CONTEXT = 2048
SEED = 20261207
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|eot_id|>", "<|pad|>", "<|start_header_id|>", "<|end_header_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] if message['content'] is string"
    " else message['content'] | map(attribute='text') | join('') }}"
    "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
WORDS = (  # noqa: SIM905 (one string reads better than 90 quoted words)
    "the a an of to in and is was for on with as by at from that this it be are or not have had "
    "model token request replica server latency scale queue batch cache prompt stream metric gpu "
    "kubernetes pod deployment node cluster engine decode prefill memory block sequence time "
    "first second minute hour fast slow small large tiny random weight answer question hello world "
    "user assistant system you we they he she what when where why how which one two three four five"
).split()


def training_text(seed: int, lines: int = 4000) -> list[str]:
    """Deterministic English-like lines plus digits and punctuation for the BPE trainer."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"]))
    return out


def build_tokenizer(output: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(SEED), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|pad|>",
        model_max_length=CONTEXT,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(output))


def build_model(
    output: Path,
    vocab_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    hidden_size: int = HIDDEN_SIZE,
    layers: int = LAYERS,
) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=hidden_size // HEAD_SIZE,
        num_key_value_heads=hidden_size // HEAD_SIZE,
        max_position_embeddings=CONTEXT,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(output), safe_serialization=True)


def positive_multiple(value: str) -> int:
    number = int(value)
    if number <= 0 or number % HEAD_SIZE:
        raise argparse.ArgumentTypeError(f"value {value} is not a positive multiple of {HEAD_SIZE}")
    return number


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--hidden-size", type=positive_multiple, default=HIDDEN_SIZE)
    parser.add_argument("--layers", type=int, choices=range(1, 65), metavar="1..64", default=LAYERS)
    args = parser.parse_args(argv)
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    build_tokenizer(output)
    vocab = json.loads((output / "tokenizer.json").read_text())["model"]["vocab"]
    ids = {token: vocab[token] for token in SPECIAL_TOKENS if token in vocab}
    size = max(max(vocab.values()) + 1, VOCAB_SIZE)
    build_model(
        output,
        size,
        ids["<|begin_of_text|>"],
        ids["<|eot_id|>"],
        ids["<|pad|>"],
        args.hidden_size,
        args.layers,
    )
    print(f"tiny model written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
