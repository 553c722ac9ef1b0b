"""Checks a log directory written by trainpp's TensorBoard callback with TensorBoard's own readers.

usage: check_tensorboard.py LOG_DIR EXPECTED_JSON

EXPECTED_JSON is {"output_dir": str, "log_history": [...]}, the trainer's state().log_history. The
checks:
  - LOG_DIR holds one file, named as torch.utils.tensorboard names event files;
  - every record passes TensorBoard's record reader (length and data CRC-32C), the records cover the
    whole file, and each Event re-serializes to the same bytes (canonical protobuf); the first is
    file_version "brain.Event:2";
  - EventAccumulator (size guidance 0: keep everything) finds exactly the scalar tags that HF's
    rewrite_logs gives the log_history keys, each with the steps and values of the log_history
    (values rounded to float32), and the required train/ and eval/ tags;
  - the "args" text (tag "args/text_summary", plugin "text", a DT_STRING tensor of shape [1]) is the
    arguments as JSON, with the run's output_dir;
  - TensorBoard's plugin loader (plugin_event_accumulator, which the TensorBoard server uses) lists
    the scalars under the "scalars" plugin and the text under the "text" plugin;
  - when torch is importable: every Summary is byte for byte what torch.utils.tensorboard's summary
    functions (used by SummaryWriter.add_scalar / add_text) produce.
Exits 0 when all pass, 1 listing the failures, 2 when tensorboard cannot be imported.
"""

import json
import math
import os
import re
import socket
import struct
import sys
import time

try:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.backend.event_processing import plugin_event_accumulator
    from tensorboard.compat.proto import event_pb2, types_pb2
    from tensorboard.compat.tensorflow_stub import errors as tb_errors
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tb_records
except ImportError as e:
    print(f"check_tensorboard.py: FAILED: cannot import tensorboard ({e}); "
          f"install it into {sys.executable}: pip install tensorboard", file=sys.stderr)
    sys.exit(2)

REQUIRED = ["train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss", "eval/accuracy"]
failures = []


def fail(message):
    failures.append(message)


def rewrite(key):  # HF's rewrite_logs, for one key
    if key.startswith("eval_"):
        return "eval/" + key[len("eval_"):]
    if key.startswith("test_"):
        return "test/" + key[len("test_"):]
    return "train/" + key


def f32_bits(v):
    return struct.pack("<f", v)


def main():
    log_dir, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)

    # --- the file and its name
    names = sorted(os.listdir(log_dir))
    if len(names) != 1:
        fail(f"expected one file in {log_dir}, found {names}")
        return
    name = names[0]
    path = os.path.join(log_dir, name)
    m = re.fullmatch(r"events\.out\.tfevents\.(\d{10})\.(.+)\.(\d+)\.(\d+)", name)
    if not m:
        fail(f"file name {name!r} is not events.out.tfevents.<10-digit time>.<host>.<pid>.<n>")
        return
    created = int(m.group(1))
    if m.group(2) != socket.gethostname():
        fail(f"host in file name {m.group(2)!r} != {socket.gethostname()!r}")
    now = time.time()
    if not now - 600 <= created <= now + 1:
        fail(f"the file name's time {created} is not recent")

    # --- every record through TensorBoard's strict record reader
    reader = tb_records.PyRecordReader_New(path.encode())
    records = []
    try:
        while True:
            reader.GetNext()
            records.append(reader.record())
    except tb_errors.OutOfRangeError:
        pass
    except tb_errors.DataLossError as e:
        fail(f"record {len(records)}: {e}")
    size = os.path.getsize(path)
    if sum(len(r) + 16 for r in records) != size:
        fail(f"the {len(records)} readable records cover {sum(len(r) + 16 for r in records)} of {size} bytes")
    events = []
    for i, raw in enumerate(records):
        event = event_pb2.Event.FromString(raw)
        if event.SerializeToString(deterministic=True) != raw:
            fail(f"record {i} is not canonical protobuf: {raw.hex()}")
        events.append(event)
        if not created - 1 <= event.wall_time <= time.time() + 1:
            fail(f"record {i}: wall_time {event.wall_time} is outside [file creation, now]")
    if not events or events[0].file_version != "brain.Event:2":
        fail("the first record is not file_version 'brain.Event:2'")
    if any(e.file_version for e in events[1:]):
        fail("a file_version record after the first")

    # --- what EventAccumulator reads
    acc = event_accumulator.EventAccumulator(
        log_dir, size_guidance={k: 0 for k in event_accumulator.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    tags = acc.Tags()

    want = {}
    for entry in expected["log_history"]:
        step = entry["step"]
        for key, value in entry.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                want.setdefault(rewrite(key), []).append((step, f32_bits(value)))
    for tag in REQUIRED:
        if tag not in tags["scalars"]:
            fail(f"required scalar tag {tag} is missing")
    if set(tags["scalars"]) != set(want):
        fail(f"scalar tags {sorted(tags['scalars'])} != expected {sorted(want)}")
    n_scalars = 0
    for tag in sorted(set(tags["scalars"]) & set(want)):
        got = [(e.step, f32_bits(e.value)) for e in acc.Scalars(tag)]
        n_scalars += len(got)
        if got != want[tag]:
            show = lambda pairs: [(s, struct.unpack("<f", b)[0]) for s, b in pairs]
            fail(f"{tag}: (step, value) {show(got)} != log_history {show(want[tag])}")

    if "args/text_summary" not in tags["tensors"]:
        fail(f"no 'args/text_summary' among the tensor tags {tags['tensors']}")
    else:
        texts = acc.Tensors("args/text_summary")
        meta = acc.SummaryMetadata("args/text_summary")
        if meta.plugin_data.plugin_name != "text":
            fail(f"args text has plugin {meta.plugin_data.plugin_name!r}, not 'text'")
        if len(texts) != 1:
            fail(f"{len(texts)} 'args' texts, expected 1")
        proto = texts[0].tensor_proto
        if proto.dtype != types_pb2.DT_STRING or [d.size for d in proto.tensor_shape.dim] != [1]:
            fail(f"args text tensor: dtype {proto.dtype}, shape {[d.size for d in proto.tensor_shape.dim]}")
        try:
            args = json.loads(proto.string_val[0].decode("utf-8"))
            if args.get("output_dir") != expected["output_dir"]:
                fail(f"args output_dir {args.get('output_dir')!r} != {expected['output_dir']!r}")
        except (ValueError, IndexError) as e:
            fail(f"args text is not JSON: {e}")

    # --- what TensorBoard's server-side loader makes of it (simple_value scalars migrate to the
    # scalars plugin)
    pacc = plugin_event_accumulator.EventAccumulator(log_dir, size_guidance={"tensors": 0})
    pacc.Reload()
    def plugin_tags(plugin):
        try:
            return set(pacc.PluginTagToContent(plugin))
        except KeyError:  # no tag of that plugin at all
            return set()
    if plugin_tags("scalars") != set(want):
        fail(f"scalars plugin tags {sorted(plugin_tags('scalars'))} != {sorted(want)}")
    if plugin_tags("text") != {"args/text_summary"}:
        fail(f"text plugin tags {sorted(plugin_tags('text'))} != ['args/text_summary']")

    # --- the same bytes as torch's SummaryWriter (importing torch is slow: only for a file that passed)
    if failures:
        return
    try:
        from torch.utils.tensorboard import summary as torch_summary
    except ImportError:
        print("check_tensorboard.py: torch.utils.tensorboard not importable; byte comparison skipped")
        return
    compared = 0
    for i, event in enumerate(events):
        if not event.HasField("summary"):
            continue
        value = event.summary.value[0]
        if value.HasField("simple_value"):
            ref = torch_summary.scalar(value.tag, value.simple_value)
        else:
            ref = torch_summary.text(value.tag.removesuffix("/text_summary"), value.tensor.string_val[0].decode())
        if ref.SerializeToString() != event.summary.SerializeToString():
            fail(f"record {i}: summary differs from torch's: {event.summary} vs {ref}")
        compared += 1
    print(f"check_tensorboard.py: {len(records)} records, {n_scalars} scalars under {len(want)} tags, "
          f"{compared} summaries identical to torch.utils.tensorboard's")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report what was found before it, then fail
        fail(f"the check stopped on {type(e).__name__}: {e}")
    if failures:
        print("check_tensorboard.py: FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("check_tensorboard.py: OK")
