#!/usr/bin/env python3
"""Writes tests/data/io/corrupt_checkpoint/: the checkpoint files besides the model, each broken in one
way, for the strict readers that resuming relies on.

    valid/<file>                 one valid file per kind, the base every corruption starts from:
                                 trainer_state.json, scheduler.json (linear), scheduler_plateau.json
                                 (reduce_lr_on_plateau), optimizer.safetensors, process_state.safetensors
    trainer_state/<case>.json    for trainpp::read_trainer_state, then trainpp::control_from_state
    scheduler/linear_<case>.json     for trainpp::read_json_file, then LRScheduler::load_state of a linear
    scheduler/plateau_<case>.json    (or a reduce_lr_on_plateau) schedule: the prefix says which
    optimizer/<case>.safetensors     for trainpp::load_optimizer_state, then AdamW::load_state over PARAMS
    process_state/<case>.safetensors for trainpp::load_process_state, then trainpp::restore_rng_state
    expected.json                "<kind>/<file>" -> a phrase the error message must contain (besides the
                                 file's path)

tests/trainpp/io/checkpoint_corpus_test.cpp reads every file with its reader and checks that each one
is refused with trainpp::Error naming the file and the problem; it also loads the valid files, checks
that writing them back with the library gives the same content (byte for byte for the safetensors
files), and feeds random corruptions of them to the readers.

Run from anywhere: python3 tools/reference/gen_corrupt_checkpoint.py
Plain Python 3, no dependencies; the output is deterministic (the directory is rewritten whole).
The safetensors files are written byte for byte as trainpp's writer (and the reference one) lays them
out: metadata first, tensors by descending dtype then name, header padded with spaces to 8 bytes.
"""
import json
import shutil
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "io" / "corrupt_checkpoint"

CASES = {}  # "<kind>/<file>" -> (bytes, expected phrase)
VALID = {}  # file name under valid/ -> bytes


def case(kind, name, data, phrase):
    ext = ".json" if kind in ("trainer_state", "scheduler") else ".safetensors"
    key = f"{kind}/{name}{ext}"
    assert key not in CASES, key
    if isinstance(data, str):
        data = data.encode()
    CASES[key] = (data, phrase)


def dumps(value, indent=None):
    return json.dumps(value, indent=indent, sort_keys=True, separators=(",", ":") if indent is None else None)


# ---- safetensors, as trainpp and the reference implementation write them ------------------------------

# dtype -> (rank in the reference implementation's dtype list, struct format of one element)
DTYPES = {"U8": (4, "B"), "I8": (5, "b"), "I32": (15, "i"), "F32": (17, "f"), "F64": (19, "d"), "I64": (20, "q")}


def tensor(dtype, shape, values):
    """(dtype, shape, raw bytes); values are packed little-endian, or taken as bytes when already bytes."""
    data = values if isinstance(values, bytes) else struct.pack("<" + DTYPES[dtype][1] * len(values), *values)
    return (dtype, list(shape), data)


def safetensors(tensors, metadata=None, raw_header=None):
    """tensors: name -> (dtype, shape, bytes). The header is written as the library writes it, unless
    raw_header (text) replaces it; the data buffer follows either way."""
    order = sorted(tensors, key=lambda n: (-DTYPES[tensors[n][0]][0], n))
    header, buffer = {}, b""
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name in order:
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buffer), len(buffer) + len(data)]}
        buffer += data
    text = (raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def truncated(data, size):
    assert size < len(data)
    return data[:size]


def flipped(data, offset, bit=0):
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


# ---- trainer_state.json --------------------------------------------------------------------------------

CONTROL = {"args": {"should_epoch_stop": False, "should_evaluate": False, "should_log": False, "should_save": True,
                    "should_training_stop": False},
           "attributes": {}}
TRAINER_STATE = {
    "best_global_step": 4,
    "best_metric": 0.5,
    "best_model_checkpoint": "out/checkpoint-4",
    "epoch": 2.0,
    "eval_steps": 2,
    "global_step": 4,
    "is_hyper_param_search": False,
    "is_local_process_zero": True,
    "is_world_process_zero": True,
    "log_history": [
        {"epoch": 1.0, "grad_norm": 1.5, "learning_rate": 0.001, "loss": 2.25, "step": 2},
        {"epoch": 2.0, "eval_accuracy": 0.75, "eval_loss": 0.5, "eval_runtime": 0.25, "step": 4},
    ],
    "logging_steps": 2,
    "max_steps": 8,
    "num_input_tokens_seen": 0,
    "num_train_epochs": 4,
    "save_steps": 2,
    "stateful_callbacks": {"TrainerControl": CONTROL},
    "total_flos": 0.0,
    "train_batch_size": 16,
    "trial_name": None,
    "trial_params": None,
}
VALID["trainer_state.json"] = (dumps(TRAINER_STATE, indent=2) + "\n").encode()


def trainer_state(**changes):
    """The valid state with keys replaced (a value of DROP removes the key)."""
    state = dict(TRAINER_STATE)
    for key, value in changes.items():
        if value is DROP:
            del state[key]
        else:
            state[key] = value
    return dumps(state, indent=2)


DROP = object()


def control(**args):
    return {"TrainerControl": {"args": dict(CONTROL["args"], **args), "attributes": {}}}


def ts(name, data, phrase):
    case("trainer_state", name, data, phrase)


valid_ts = VALID["trainer_state.json"].decode()
NOT_JSON = "not valid JSON"
ts("empty", "", NOT_JSON)
ts("whitespace_only", " \n\t\n", NOT_JSON)
ts("truncated", valid_ts[: len(valid_ts) // 2], NOT_JSON)
ts("truncated_in_string", valid_ts[: valid_ts.index("out/checkpoint-4") + 5], NOT_JSON)
ts("trailing_comma", '{"global_step": 4,}', NOT_JSON)
ts("trailing_garbage", valid_ts + "x", NOT_JSON)
ts("two_documents", "{}{}", NOT_JSON)
ts("comment", '// saved by hand\n{"global_step": 4}', NOT_JSON)
ts("single_quotes", "{'global_step': 4}", NOT_JSON)
ts("nan_literal", '{"best_metric": NaN}', NOT_JSON)
ts("infinity_literal", '{"best_metric": -Infinity}', NOT_JSON)
ts("not_utf8", b'{"trial_name": "\xff\xfe"}', NOT_JSON)
ts("nul_byte", valid_ts[:40] + "\0" + valid_ts[40:], "a NUL byte at offset 40")
ts("nul_bytes_only", "\0" * 16, "a NUL byte at offset 0")
ts("duplicate_key", '{"global_step": 4, "max_steps": 8, "global_step": 5}', 'duplicate key "global_step"')
ts("duplicate_key_in_log", '{"log_history": [{"step": 2, "loss": 1.0, "step": 3}]}', 'duplicate key "step"')
ts("nested_arrays_100000", "[" * 100000, "nested deeper than 64 levels")
ts("nested_objects_20000", '{"":' * 20000, "nested deeper than 64 levels")
ts("nested_in_log_history", '{"log_history": ' + "[" * 70 + "]" * 70 + "}", "nested deeper than 64 levels")
ts("number_overflow", '{"global_step": 1e999}', "number overflow")
ts("number_overflow_negative", '{"total_flos": -1e400}', "number overflow")
ts("not_object", "[]", "trainer state must be a JSON object, got array")
ts("string", '"trainer_state"', "trainer state must be a JSON object, got string")
ts("null", "null", "trainer state must be a JSON object, got null")
# Wrong types, key by key.
INTEGER = "must be an integer of at least 0"
ts("global_step_string", trainer_state(global_step="4"), f'"global_step" {INTEGER}, got "4"')
ts("global_step_negative", trainer_state(global_step=-4), f'"global_step" {INTEGER}, got -4')
ts("global_step_fraction", trainer_state(global_step=4.5), f'"global_step" {INTEGER}, got 4.5')
ts("global_step_bool", trainer_state(global_step=True), f'"global_step" {INTEGER}, got true')
ts("global_step_array", trainer_state(global_step=[4]), f'"global_step" {INTEGER}, got [4]')
ts("global_step_huge", '{"global_step": 123456789012345678901234567890}', f'"global_step" {INTEGER}')
ts("global_step_over_int64", '{"global_step": 9223372036854775808}', f'"global_step" {INTEGER}')
ts("max_steps_string", trainer_state(max_steps="8"), f'"max_steps" {INTEGER}')
ts("logging_steps_object", trainer_state(logging_steps={"steps": 2}), f'"logging_steps" {INTEGER}')
ts("eval_steps_negative", trainer_state(eval_steps=-1), f'"eval_steps" {INTEGER}')
ts("save_steps_fraction", trainer_state(save_steps=0.5), f'"save_steps" {INTEGER}')
ts("train_batch_size_bool", trainer_state(train_batch_size=False), f'"train_batch_size" {INTEGER}')
ts("num_train_epochs_string", trainer_state(num_train_epochs="4"), f'"num_train_epochs" {INTEGER}')
ts("num_input_tokens_seen_negative", trainer_state(num_input_tokens_seen=-1), f'"num_input_tokens_seen" {INTEGER}')
ts("epoch_string", trainer_state(epoch="2.0"), '"epoch" must be a number, got "2.0"')
ts("total_flos_string", trainer_state(total_flos="0"), '"total_flos" must be a number')
ts("best_metric_string", trainer_state(best_metric="0.5"), '"best_metric" must be a number, got "0.5"')
ts("best_metric_object", trainer_state(best_metric={"eval_loss": 0.5}), '"best_metric" must be a number')
ts("best_global_step_string", trainer_state(best_global_step="4"), f'"best_global_step" {INTEGER}')
ts("best_model_checkpoint_number", trainer_state(best_model_checkpoint=4), '"best_model_checkpoint" must be a string')
ts("is_local_process_zero_string", trainer_state(is_local_process_zero="true"),
   '"is_local_process_zero" must be true or false')
ts("is_world_process_zero_number", trainer_state(is_world_process_zero=1), '"is_world_process_zero" must be true or false')
ts("is_hyper_param_search_null", trainer_state(is_hyper_param_search=None), '"is_hyper_param_search" must be true or false')
ts("trial_name_array", trainer_state(trial_name=["a"]), '"trial_name" must be a string')
ts("trial_params_string", trainer_state(trial_params="lr=1"), '"trial_params" must be an object or null')
ts("log_history_object", trainer_state(log_history={"0": {"step": 2}}), '"log_history" must be an array of objects')
ts("log_history_null", trainer_state(log_history=None), '"log_history" must be an array of objects')
ts("log_history_entry_number", trainer_state(log_history=[{"step": 2}, 3]), "log_history[1] must be a JSON object, got number")
ts("log_history_entry_array", trainer_state(log_history=[[2, 0.5]]), "log_history[0] must be a JSON object, got array")
ts("log_history_nested_object", trainer_state(log_history=[{"step": 2, "loss": {"value": 1.0}}]),
   'log_history[0] "loss" must be a number, string, boolean or null')
ts("log_history_nested_array", trainer_state(log_history=[{"step": 2}, {"step": 4, "eval_loss": [0.5]}]),
   'log_history[1] "eval_loss" must be a number, string, boolean or null')
ts("log_history_step_string", trainer_state(log_history=[{"step": "2", "loss": 1.0}]), f'log_history[0] "step" {INTEGER}')
ts("log_history_step_negative", trainer_state(log_history=[{"step": -2, "loss": 1.0}]), f'log_history[0] "step" {INTEGER}')
ts("stateful_callbacks_array", trainer_state(stateful_callbacks=[CONTROL]), '"stateful_callbacks" must be an object')
ts("stateful_callbacks_null", trainer_state(stateful_callbacks=None), '"stateful_callbacks" must be an object')
# TrainerControl, read by control_from_state.
ts("control_not_object", trainer_state(stateful_callbacks={"TrainerControl": [CONTROL]}),
   "stateful_callbacks.TrainerControl must be a JSON object, got array")
ts("control_args_string", trainer_state(stateful_callbacks={"TrainerControl": {"args": "should_save"}}),
   "stateful_callbacks.TrainerControl.args must be a JSON object, got string")
ts("control_should_training_stop_string", trainer_state(stateful_callbacks=control(should_training_stop="true")),
   '"should_training_stop" must be true or false, got "true"')
ts("control_should_epoch_stop_number", trainer_state(stateful_callbacks=control(should_epoch_stop=1)),
   '"should_epoch_stop" must be true or false, got 1')
ts("control_should_save_string", trainer_state(stateful_callbacks=control(should_save="false")),
   '"should_save" must be true or false, got "false"')
ts("control_should_evaluate_null", trainer_state(stateful_callbacks=control(should_evaluate=None)),
   '"should_evaluate" must be true or false, got null')
ts("control_should_log_array", trainer_state(stateful_callbacks=control(should_log=[True])),
   '"should_log" must be true or false, got [true]')


# ---- scheduler.json ------------------------------------------------------------------------------------

# The test builds the matching schedules with make_scheduler: learning_rate 0.001, no warmup,
# 8 training steps, default kwargs.
LINEAR = {"base_lr": 0.001, "kwargs": {}, "lr_scheduler_type": "linear", "num_training_steps": 8, "num_warmup_steps": 0}
PLATEAU = {"base_lr": 0.001, "best": 0.5, "cooldown_counter": 0, "kwargs": {}, "last_epoch": 3,
           "last_lrs": [0.0001, 0.0001], "lr_scheduler_type": "reduce_lr_on_plateau", "num_bad_epochs": 1,
           "num_training_steps": 8, "num_warmup_steps": 0}
VALID["scheduler.json"] = (dumps(LINEAR, indent=2) + "\n").encode()
VALID["scheduler_plateau.json"] = (dumps(PLATEAU, indent=2) + "\n").encode()


def plateau(**changes):
    state = dict(PLATEAU)
    for key, value in changes.items():
        if value is DROP:
            del state[key]
        else:
            state[key] = value
    return dumps(state, indent=2)


def sch(name, data, phrase):
    assert name.startswith(("linear_", "plateau_"))
    case("scheduler", name, data, phrase)


valid_linear = VALID["scheduler.json"].decode()
valid_plateau = VALID["scheduler_plateau.json"].decode()
sch("linear_empty", "", NOT_JSON)
sch("linear_truncated", valid_linear[: len(valid_linear) // 2], NOT_JSON)
sch("linear_nul_byte", valid_linear[:10] + "\0" + valid_linear[10:], "a NUL byte at offset 10")
sch("linear_duplicate_key", '{"lr_scheduler_type": "linear", "lr_scheduler_type": "cosine"}',
    'duplicate key "lr_scheduler_type"')
sch("linear_nested_10000", "[" * 10000 + "]" * 10000, "nested deeper than 64 levels")
sch("linear_number_overflow", '{"lr_scheduler_type": "linear", "base_lr": 1e999}', "number overflow")
sch("linear_not_object", "[" + valid_linear + "]", "scheduler state must be an object with lr_scheduler_type")
sch("linear_type_missing", dumps({k: v for k, v in LINEAR.items() if k != "lr_scheduler_type"}),
    "scheduler state must be an object with lr_scheduler_type")
sch("linear_type_number", dumps(dict(LINEAR, lr_scheduler_type=1)), "scheduler state is for lr_scheduler_type 1, this run uses linear")
sch("linear_type_cosine", dumps(dict(LINEAR, lr_scheduler_type="cosine")),
    'scheduler state is for lr_scheduler_type "cosine", this run uses linear')
sch("linear_type_upper_case", dumps(dict(LINEAR, lr_scheduler_type="LINEAR")),
    'scheduler state is for lr_scheduler_type "LINEAR", this run uses linear')
sch("linear_state_of_plateau", valid_plateau,
    'scheduler state is for lr_scheduler_type "reduce_lr_on_plateau", this run uses linear')
sch("plateau_state_of_linear", valid_linear,
    'scheduler state is for lr_scheduler_type "linear", this run uses reduce_lr_on_plateau')
sch("plateau_truncated", valid_plateau[: len(valid_plateau) - 10], NOT_JSON)
sch("plateau_not_object", '"reduce_lr_on_plateau"', "scheduler state must be an object with lr_scheduler_type")
for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "last_lrs"):
    sch(f"plateau_missing_{key}", plateau(**{key: DROP}), f'scheduler state for reduce_lr_on_plateau lacks "{key}"')
COUNTER = "must be a non-negative integer"
sch("plateau_best_bool", plateau(best=True), "best must be a number, got true")
sch("plateau_best_word", plateau(best="infinity"), 'best must be a number, got "infinity"')
sch("plateau_best_null", plateau(best=None), "best must be a number, got null")
sch("plateau_num_bad_epochs_string", plateau(num_bad_epochs="1"), f'"num_bad_epochs" {COUNTER}, got "1"')
sch("plateau_num_bad_epochs_negative", plateau(num_bad_epochs=-1), f'"num_bad_epochs" {COUNTER}, got -1')
sch("plateau_num_bad_epochs_fraction", plateau(num_bad_epochs=1.5), f'"num_bad_epochs" {COUNTER}, got 1.5')
sch("plateau_num_bad_epochs_bool", plateau(num_bad_epochs=True), f'"num_bad_epochs" {COUNTER}, got true')
sch("plateau_cooldown_counter_huge", plateau(cooldown_counter=1e300), f'"cooldown_counter" {COUNTER}')
sch("plateau_cooldown_counter_over_int64", plateau(cooldown_counter=2**63), f'"cooldown_counter" {COUNTER}')
sch("plateau_last_epoch_null", plateau(last_epoch=None), f'"last_epoch" {COUNTER}, got null')
sch("plateau_last_epoch_object", plateau(last_epoch={"epoch": 3}), f'"last_epoch" {COUNTER}')
sch("plateau_last_lrs_number", plateau(last_lrs=0.0001), '"last_lrs" must be an array of numbers, got 0.0001')
sch("plateau_last_lrs_strings", plateau(last_lrs=["0.0001", "0.0001"]), '"last_lrs" must be an array of numbers')
sch("plateau_last_lrs_bools", plateau(last_lrs=[True, False]), '"last_lrs" must be an array of numbers')
sch("plateau_last_lrs_nested", plateau(last_lrs=[[0.0001], [0.0001]]), '"last_lrs" must be an array of numbers')


# ---- optimizer.safetensors -----------------------------------------------------------------------------

# The parameters of the AdamW the test loads into, in the optimizer's flat order (group 0, then group 1).
# Keep in step with params() in tests/trainpp/io/checkpoint_corpus_test.cpp. The last one has no state
# (it was never updated), as a parameter that never had a gradient.
PARAMS = [("fc1.weight", [3, 2]), ("fc2.weight", [2, 3]), ("fc1.bias", [3]), ("fc2.bias", [2])]
GROUPS = [{"initial_lr": 0.001, "lr": 0.0005, "names": ["fc1.weight", "fc2.weight"], "num_parameters": 2,
           "weight_decay": 0.01},
          {"initial_lr": 0.001, "lr": 0.0005, "names": ["fc1.bias", "fc2.bias"], "num_parameters": 2,
           "weight_decay": 0.0}]
META = {"num_parameters": 4, "param_groups": GROUPS, "version": 1}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def adam_state(shape, seed):
    n = numel(shape)
    return {"exp_avg": tensor("F32", shape, [((i * 5 + seed) % 9 - 4) / 16 for i in range(n)]),
            "exp_avg_sq": tensor("F32", shape, [((i * 3 + seed) % 7) / 64 for i in range(n)]),
            "step": tensor("F32", [], [3.0])}


OPT_TENSORS = {}
for index, (_, shape) in enumerate(PARAMS[:3]):
    for key, value in adam_state(shape, index).items():
        OPT_TENSORS[f"state.{index}.{key}"] = value


def optimizer(tensors=None, meta=None, metadata=None, raw_meta=None, **replace):
    """The valid optimizer file with its tensors, its "trainpp.optimizer" JSON (meta, or raw_meta as
    text) or its whole metadata replaced; keyword arguments replace (or, with DROP, remove) tensors."""
    tensors = dict(OPT_TENSORS if tensors is None else tensors)
    for name, value in replace.items():
        name = name.replace("__", ".")
        if value is DROP:
            del tensors[name]
        else:
            tensors[name] = value
    if metadata is None:
        text = raw_meta if raw_meta is not None else json.dumps(META if meta is None else meta, sort_keys=True,
                                                                separators=(",", ":"))
        metadata = {"format": "pt", "trainpp.optimizer": text}
    return safetensors(tensors, metadata if metadata != {} else None)


def meta_with(**changes):
    meta = dict(META)
    for key, value in changes.items():
        if value is DROP:
            del meta[key]
        else:
            meta[key] = value
    return meta


def groups_with(index, **changes):
    groups = [dict(g) for g in GROUPS]
    for key, value in changes.items():
        if value is DROP:
            del groups[index][key]
        else:
            groups[index][key] = value
    return meta_with(param_groups=groups)


def opt(name, data, phrase):
    case("optimizer", name, data, phrase)


VALID["optimizer.safetensors"] = optimizer()
valid_opt = VALID["optimizer.safetensors"]
opt_header_size = struct.unpack("<Q", valid_opt[:8])[0]
opt("empty", b"", "fewer than the 8-byte header size")
opt("truncated_in_size", valid_opt[:5], "fewer than the 8-byte header size")
opt("truncated_in_header", truncated(valid_opt, 8 + opt_header_size // 2), "runs past the end of the file")
opt("truncated_in_data", truncated(valid_opt, len(valid_opt) - 6), "past the data buffer")
opt("header_bit_flipped", flipped(valid_opt, 8), "not valid UTF-8 JSON")  # '{' -> 'z'
opt("header_size_bit_flipped", flipped(valid_opt, 7, 7), "exceeds the limit")
opt("header_quote_bit_flipped", flipped(valid_opt, 9, 1), "not valid UTF-8 JSON")  # '"' -> ' '
opt("data_size_mismatch", valid_opt + b"\0" * 4, "but the data buffer holds")
opt("no_metadata", optimizer(metadata={}), 'the metadata lacks "trainpp.optimizer"')
opt("metadata_without_optimizer", optimizer(metadata={"format": "pt"}), 'the metadata lacks "trainpp.optimizer"')
opt("metadata_value_object", safetensors({}, raw_header=json.dumps(
    {"__metadata__": {"format": "pt", "trainpp.optimizer": {"version": 1}}}, separators=(",", ":"))),
    'value of "trainpp.optimizer" must be a string')
opt("metadata_not_json", optimizer(raw_meta='{"num_parameters": 4, "param_groups": ['),
    "(metadata trainpp.optimizer): not valid JSON")
opt("metadata_python_repr", optimizer(raw_meta="{'num_parameters': 4}"), "(metadata trainpp.optimizer): not valid JSON")
opt("metadata_nul_byte", optimizer(raw_meta='{"version": 1}\0'), "a NUL byte at offset 14")
opt("metadata_duplicate_key", optimizer(raw_meta='{"version": 1, "version": 1, "num_parameters": 0, "param_groups": []}'),
    'duplicate key "version"')
opt("metadata_nested_1000", optimizer(raw_meta="[" * 1000), "nested deeper than 64 levels")
opt("metadata_array", optimizer(raw_meta="[1]"), "the optimizer metadata must be a JSON object, got array")
opt("version_2", optimizer(meta=meta_with(version=2)), "unsupported optimizer state version 2")
opt("version_missing", optimizer(meta=meta_with(version=DROP)), 'lacks the key "version"')
opt("version_string", optimizer(meta=meta_with(version="1")), '"version" must be an integer')
opt("num_parameters_missing", optimizer(meta=meta_with(num_parameters=DROP)), 'lacks the key "num_parameters"')
opt("num_parameters_negative", optimizer(meta=meta_with(num_parameters=-4)), '"num_parameters" must be an integer of at least 0')
opt("num_parameters_string", optimizer(meta=meta_with(num_parameters="4")), '"num_parameters" must be an integer of at least 0')
opt("num_parameters_huge", optimizer(meta=meta_with(num_parameters=2**62, param_groups=[
    {"initial_lr": 0.001, "lr": 0.001, "names": [], "num_parameters": 2**62, "weight_decay": 0.0}])),
    "more than any model has")
opt("param_groups_missing", optimizer(meta=meta_with(param_groups=DROP)), 'lacks the key "param_groups"')
opt("param_groups_object", optimizer(meta=meta_with(param_groups={"0": GROUPS[0]})), '"param_groups" must be an array')
opt("group_not_object", optimizer(meta=meta_with(param_groups=[GROUPS[0], 2])), "param_groups[1] must be a JSON object, got number")
opt("group_lr_string", optimizer(meta=groups_with(0, lr="0.0005")), 'param_groups[0] "lr" must be a number')
opt("group_lr_negative", optimizer(meta=groups_with(0, lr=-0.001)), 'param_groups[0] "lr" must be a finite non-negative number')
opt("group_weight_decay_infinity", optimizer(meta=groups_with(1, weight_decay=float("inf"))), "not valid JSON")
opt("group_initial_lr_missing", optimizer(meta=groups_with(1, initial_lr=DROP)), 'param_groups[1] lacks the key "initial_lr"')
opt("group_weight_decay_null", optimizer(meta=groups_with(0, weight_decay=None)), 'param_groups[0] "weight_decay" must be a number')
opt("group_num_parameters_negative", optimizer(meta=groups_with(1, num_parameters=-2)),
    'param_groups[1] "num_parameters" must be an integer of at least 0')
opt("group_names_string", optimizer(meta=groups_with(0, names="fc1.weight,fc2.weight")),
    'param_groups[0] "names" must be an array of strings')
opt("group_names_numbers", optimizer(meta=groups_with(1, names=[0, 1])), 'param_groups[1] "names" must be an array of strings')
opt("group_names_null_entry", optimizer(meta=groups_with(0, names=["fc1.weight", None])),
    'param_groups[0] "names" must be an array of strings')
opt("group_names_count", optimizer(meta=groups_with(0, names=["fc1.weight", "fc2.weight", "fc3.weight"])),
    "param_groups[0] has 2 parameters but 3 names")
opt("groups_too_few", optimizer(meta=groups_with(1, num_parameters=1, names=[])),
    "the parameter groups hold 3 parameters, num_parameters says 4")
opt("groups_too_many", optimizer(meta=groups_with(1, num_parameters=3, names=[])),
    "the parameter groups hold more parameters than num_parameters (4)")
opt("groups_overflow", optimizer(meta=meta_with(param_groups=[dict(GROUPS[0], num_parameters=2**63 - 1, names=[])] * 2)),
    "the parameter groups hold more parameters than num_parameters (4)")
opt("no_groups", optimizer(meta=meta_with(param_groups=[])), "the parameter groups hold 0 parameters, num_parameters says 4")
opt("tensor_outside_scheme", optimizer(**{"exp_avg.0": tensor("F32", [1], [0.0])}), 'unexpected tensor "exp_avg.0"')
opt("tensor_model_weight", optimizer(**{"fc1.weight": tensor("F32", [3, 2], [0.0] * 6)}), 'unexpected tensor "fc1.weight"')
opt("tensor_without_key", optimizer(**{"state.0": tensor("F32", [], [1.0])}), 'unexpected tensor "state.0"')
opt("tensor_empty_key", optimizer(**{"state.0.": tensor("F32", [], [1.0])}), 'unexpected tensor "state.0."')
opt("tensor_without_index", optimizer(**{"state..exp_avg": tensor("F32", [], [1.0])}), 'unexpected tensor "state..exp_avg"')
opt("tensor_index_word", optimizer(**{"state.one.exp_avg": tensor("F32", [], [1.0])}), 'unexpected tensor "state.one.exp_avg"')
opt("tensor_index_negative", optimizer(**{"state.-1.exp_avg": tensor("F32", [], [1.0])}), 'unexpected tensor "state.-1.exp_avg"')
opt("tensor_index_plus", optimizer(**{"state.+1.exp_avg": tensor("F32", [], [1.0])}), 'unexpected tensor "state.+1.exp_avg"')
opt("tensor_index_leading_zero", optimizer(**{"state.01.exp_avg": tensor("F32", [2, 3], [0.0] * 6)}),
    'unexpected tensor "state.01.exp_avg"')
opt("tensor_index_over_u64", optimizer(**{"state.99999999999999999999999.step": tensor("F32", [], [1.0])}),
    'unexpected tensor "state.99999999999999999999999.step"')
opt("tensor_index_past_end", optimizer(**{"state.4.step": tensor("F32", [], [1.0])}),
    'tensor "state.4.step" is for parameter #4, but the optimizer state has 4 parameters')
opt("tensor_index_far_past_end", optimizer(**{"state.18446744073709551615.step": tensor("F32", [], [1.0])}),
    "is for parameter #18446744073709551615")
opt("state_unknown_key", optimizer(**{"state.1.momentum_buffer": tensor("F32", [2, 3], [0.0] * 6)}),
    "unexpected state entry 'momentum_buffer' for parameter #1")
opt("state_lacks_exp_avg_sq", optimizer(state__0__exp_avg_sq=DROP), "state of parameter #0 lacks 'exp_avg_sq'")
opt("state_lacks_step", optimizer(state__2__step=DROP), "state of parameter #2 lacks 'step'")
opt("state_exp_avg_transposed", optimizer(state__0__exp_avg=tensor("F32", [2, 3], [0.0] * 6)),
    "state entry 'exp_avg' of parameter #0 has shape [2, 3], the parameter has [3, 2]")
opt("state_exp_avg_sq_scalar", optimizer(state__2__exp_avg_sq=tensor("F32", [], [0.0])),
    "state entry 'exp_avg_sq' of parameter #2 has shape [], the parameter has [3]")
opt("state_step_two_values", optimizer(state__1__step=tensor("F32", [2], [3.0, 3.0])), "'step' of parameter #1 must hold one value")
opt("state_step_empty", optimizer(state__0__step=tensor("F32", [0], [])), "'step' of parameter #0 must hold one value")
opt("state_more_parameters", optimizer(meta=meta_with(num_parameters=5, param_groups=[
    dict(GROUPS[0], num_parameters=3, names=[]), GROUPS[1]])), "the saved state has 5 parameters, the optimizer has 4")
opt("state_fewer_parameters", optimizer(meta=meta_with(num_parameters=3, param_groups=[
    GROUPS[0], dict(GROUPS[1], num_parameters=1, names=["fc1.bias"])])),
    "the saved state has 3 parameters, the optimizer has 4")


# ---- process_state.safetensors -------------------------------------------------------------------------

def mt19937_state(seed):
    """The 5056 bytes of torch's CPU generator state (CPUGeneratorImplState) after torch.manual_seed(seed)."""
    words = [seed & 0xFFFFFFFF]
    for i in range(1, 624):
        words.append((1812433253 * (words[-1] ^ (words[-1] >> 30)) + i) & 0xFFFFFFFF)
    legacy = struct.pack("<QiiQ", seed, 1, 1, 0) + struct.pack("<624Q", *words) + struct.pack("<dddi4x", 0, 0, 0, 0)
    return legacy + struct.pack("<f?3x", 0, False)


RNG = mt19937_state(42)
assert len(RNG) == 5056
PROCESS_TENSORS = {
    "rng.cpu": tensor("U8", [len(RNG)], RNG),
    "loop.tr_loss": tensor("F32", [], [1.25]),
    "loop.total_loss_scalar": tensor("F64", [], [10.5]),
    "loop.globalstep_last_logged": tensor("I64", [], [2]),
    "loop.scheduler_steps": tensor("I64", [], [4]),
}
PROCESS_META = {"format": "pt", "rank": "0", "trainpp.process_state": "1", "world_size": "1"}


def process_state(metadata=None, **replace):
    tensors = dict(PROCESS_TENSORS)
    for name, value in replace.items():
        name = name.replace("__", ".")
        if value is DROP:
            del tensors[name]
        else:
            tensors[name] = value
    return safetensors(tensors, PROCESS_META if metadata is None else (metadata or None))


def meta_of_process(**changes):
    meta = dict(PROCESS_META)
    for key, value in changes.items():
        if value is DROP:
            del meta[key]
        else:
            meta[key] = value
    return meta


def ps(name, data, phrase):
    case("process_state", name, data, phrase)


VALID["process_state.safetensors"] = process_state()
valid_ps = VALID["process_state.safetensors"]
ps_header_size = struct.unpack("<Q", valid_ps[:8])[0]
ps("empty", b"", "fewer than the 8-byte header size")
ps("truncated_in_header", truncated(valid_ps, 8 + ps_header_size - 20), "runs past the end of the file")
ps("truncated_in_data", truncated(valid_ps, len(valid_ps) - 1000), "past the data buffer")
ps("header_bit_flipped", flipped(valid_ps, valid_ps.index(b'":', 8) + 1), "not valid UTF-8 JSON")  # ':' -> ';'
ps("header_size_bit_flipped", flipped(valid_ps, 0, 5), "not valid UTF-8 JSON")
ps("header_all_spaces", struct.pack("<Q", 16) + b" " * 16, "not valid UTF-8 JSON")
ps("no_metadata", process_state(metadata={}), 'the metadata lacks "trainpp.process_state"')
ps("metadata_without_rank", process_state(metadata=meta_of_process(rank=DROP)), 'the metadata lacks "rank"')
ps("metadata_without_world_size", process_state(metadata=meta_of_process(world_size=DROP)), 'the metadata lacks "world_size"')
ps("version_2", process_state(metadata=meta_of_process(**{"trainpp.process_state": "2"})), "unsupported process state version")
ps("version_word", process_state(metadata=meta_of_process(**{"trainpp.process_state": "one"})),
   'metadata "trainpp.process_state" must be a non-negative integer, got "one"')
ps("rank_word", process_state(metadata=meta_of_process(rank="zero")), 'metadata "rank" must be a non-negative integer, got "zero"')
ps("rank_negative", process_state(metadata=meta_of_process(rank="-1")), 'metadata "rank" must be a non-negative integer, got "-1"')
ps("rank_plus", process_state(metadata=meta_of_process(rank="+0")), 'metadata "rank" must be a non-negative integer, got "+0"')
ps("rank_space", process_state(metadata=meta_of_process(rank=" 0")), 'metadata "rank" must be a non-negative integer, got " 0"')
ps("rank_hex", process_state(metadata=meta_of_process(rank="0x0")), 'metadata "rank" must be a non-negative integer, got "0x0"')
ps("rank_empty", process_state(metadata=meta_of_process(rank="")), 'metadata "rank" must be a non-negative integer, got ""')
ps("rank_huge", process_state(metadata=meta_of_process(rank="99999999999999999999")),
   'metadata "rank" must be a non-negative integer, got "99999999999999999999"')
ps("world_size_fraction", process_state(metadata=meta_of_process(world_size="1.0")),
   'metadata "world_size" must be a non-negative integer, got "1.0"')
ps("rank_not_below_world_size", process_state(metadata=meta_of_process(rank="1")), "rank 1 is not below world_size 1")
ps("rank_far_past_world_size", process_state(metadata=meta_of_process(rank="9223372036854775807", world_size="2")),
   "rank 9223372036854775807 is not below world_size 2")
ps("world_size_zero", process_state(metadata=meta_of_process(world_size="0")), "rank 0 is not below world_size 0")
ps("rank_number", safetensors({}, raw_header=json.dumps(
    {"__metadata__": dict(PROCESS_META, rank=0)}, separators=(",", ":"))), 'value of "rank" must be a string')
for name in PROCESS_TENSORS:
    ps("missing_" + name.replace(".", "_"), process_state(**{name.replace(".", "__"): DROP}),
       f'the process state lacks the tensor "{name}"')
ps("tr_loss_f64", process_state(loop__tr_loss=tensor("F64", [], [1.25])),
   'tensor "loop.tr_loss" must be a 0-dimensional Float, got 0 Double')
ps("tr_loss_vector", process_state(loop__tr_loss=tensor("F32", [1], [1.25])),
   'tensor "loop.tr_loss" must be a 0-dimensional Float, got 1 Float')
ps("total_loss_scalar_f32", process_state(loop__total_loss_scalar=tensor("F32", [], [10.5])),
   'tensor "loop.total_loss_scalar" must be a 0-dimensional Double, got 0 Float')
ps("globalstep_last_logged_i32", process_state(loop__globalstep_last_logged=tensor("I32", [], [2])),
   'tensor "loop.globalstep_last_logged" must be a 0-dimensional Long, got 0 Int')
ps("scheduler_steps_matrix", process_state(loop__scheduler_steps=tensor("I64", [1, 1], [4])),
   'tensor "loop.scheduler_steps" must be a 0-dimensional Long, got 2 Long')
ps("rng_cpu_i8", process_state(rng__cpu=tensor("I8", [len(RNG)], RNG)), 'tensor "rng.cpu" must be a 1-dimensional Byte, got 1 Char')
ps("rng_cpu_matrix", process_state(rng__cpu=tensor("U8", [2, len(RNG) // 2], RNG)),
   'tensor "rng.cpu" must be a 1-dimensional Byte, got 2 Byte')
ps("rng_cpu_short", process_state(rng__cpu=tensor("U8", [100], RNG[:100])), "rng.cpu holds 100 bytes, a CPU generator state has 5056")
ps("rng_cpu_empty", process_state(rng__cpu=tensor("U8", [0], b"")), "rng.cpu holds 0 bytes, a CPU generator state has 5056")
# The right size, but not a state the Mersenne Twister accepts: "left" (bytes 8..11) must be 1..624.
ps("rng_cpu_invalid", process_state(rng__cpu=tensor("U8", [len(RNG)], RNG[:8] + struct.pack("<i", 0) + RNG[12:])),
   "rng.cpu is not a valid CPU generator state")
ps("rng_cpu_not_seeded", process_state(rng__cpu=tensor("U8", [len(RNG)], RNG[:12] + struct.pack("<i", 0) + RNG[16:])),
   "rng.cpu is not a valid CPU generator state")
ps("globalstep_last_logged_negative", process_state(loop__globalstep_last_logged=tensor("I64", [], [-1])),
   "loop counters must not be negative")
ps("scheduler_steps_negative", process_state(loop__scheduler_steps=tensor("I64", [], [-(2**63)])),
   "loop counters must not be negative")
ps("extra_tensor", process_state(loop__epoch=tensor("F64", [], [1.0])), 'unexpected tensor "loop.epoch" in a process state')
ps("extra_model_weight", process_state(**{"fc1__weight": tensor("F32", [3, 2], [0.0] * 6)}),
   'unexpected tensor "fc1.weight" in a process state')
ps("cuda_rng_without_device_0", process_state(**{"rng__cuda:1": tensor("U8", [16], bytes(16))}),
   'unexpected tensor "rng.cuda:1" in a process state')
ps("cuda_rng_f32", process_state(**{"rng__cuda:0": tensor("F32", [4], [0.0] * 4)}),
   'tensor "rng.cuda:0" must be a 1-dimensional Byte, got 1 Float')


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for name, data in VALID.items():
        (OUT / "valid").mkdir(parents=True, exist_ok=True)
        (OUT / "valid" / name).write_bytes(data)
    for key, (data, _) in CASES.items():
        path = OUT / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (OUT / "expected.json").write_text(json.dumps({k: v[1] for k, v in CASES.items()}, indent=1, sort_keys=True) + "\n")
    counts = {}
    for key in CASES:
        counts[key.split("/")[0]] = counts.get(key.split("/")[0], 0) + 1
    print(f"wrote {len(CASES)} corrupt files ({', '.join(f'{k}: {n}' for k, n in counts.items())}) "
          f"and {len(VALID)} valid ones to {OUT}")


if __name__ == "__main__":
    main()
