"""A checkpoint on disk, checked before it loads: the folder exists, its files are whole, an adapter fits its base.

Without these checks a local path that does not exist reaches the hub client and fails with an
``OSError`` about repo ids, a truncated ``model.safetensors`` fails with "incomplete metadata" naming
no file, and a LoRA adapter made for another model loads without a word (or fails in PEFT's state
dict loading). Every check here reads headers only (safetensors headers, zip directories), never
the tensors.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile

from safetensors import SafetensorError, safe_open

WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
LORA_KINDS = ("lora_embedding_A", "lora_embedding_B", "lora_A", "lora_B")


def looks_like_path(name: str) -> bool:
    """``True`` for a name that can only be a local path (a hub id is ``name`` or ``org/name``)."""
    name = os.fspath(name)
    explicit = name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name
    return explicit or os.path.exists(name)


def local_folder(name_or_path: str, *, what: str = "checkpoint", needs: str = "config.json") -> str | None:
    """The local folder ``name_or_path`` names, checked; ``None`` for a hub id.

    Raises:
        FileNotFoundError: for a path that does not exist, a file, or a folder without ``needs``.
    """
    name = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, needs)):
            inner = sorted(d for d in os.listdir(name) if os.path.isfile(os.path.join(name, d, needs)))
            hint = f" It holds {inner[:3]}{'...' if len(inner) > 3 else ''}: pass one of them." if inner else ""
            raise FileNotFoundError(f"{name_or_path!r} is a folder without {needs}, so it is no {what} folder.{hint}")
        return name
    if not looks_like_path(name_or_path):
        return None
    if os.path.exists(name):
        raise FileNotFoundError(f"{name_or_path!r} is a file; pass the {what} folder that holds {needs}.")
    raise FileNotFoundError(
        f"No {what} folder at {name_or_path!r} ({os.path.abspath(name)} does not exist). Check the path; a hub id "
        "has the form 'org/name'."
    )


def hub_error(name_or_path: str, err: Exception) -> OSError:
    """The error for a name that is no local folder and that the hub client could not resolve."""
    return OSError(
        f"{name_or_path!r} is neither a local folder (nothing at {os.path.abspath(os.path.expanduser(name_or_path))}) "
        f"nor a model the hub client could fetch ({type(err).__name__}: {err}). Check the path or the hub id."
        + (" The hub is offline (HF_HUB_OFFLINE=1) and these weights are not in the local cache: fetch them on a "
           f"machine with network (`hf download {name_or_path}`) or pass a local checkpoint folder."
           if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") else "")
    )


def read_json(path: str) -> dict:
    """A JSON file, or an error naming the file as corrupt."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}): the checkpoint is truncated or corrupt. Copy, download or save it "
            "again."
        ) from None


def check_whole(path: str) -> None:
    """Refuse a truncated or corrupt weight file (safetensors header; zip directory of a torch file).

    Raises:
        ValueError: naming the file.
    """
    fix = "the file is truncated or corrupt (an interrupted copy, download or save). Copy, download or save it again."
    if path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as err:
            raise ValueError(f"{path}: {err}: {fix}") from None
        return
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"  # torch.save's format since 1.6; older pickles are not checked
    if is_zip:
        try:
            zipfile.ZipFile(path).close()
        except zipfile.BadZipFile as err:
            raise ValueError(f"{path}: {err}: {fix}") from None


def check_weight_files(folder: str) -> None:
    """Refuse a checkpoint folder whose weights are missing a shard, truncated or corrupt."""
    for index in WEIGHT_INDEXES:
        index_path = os.path.join(folder, index)
        if os.path.isfile(index_path):
            shards = sorted(set(read_json(index_path).get("weight_map", {}).values()))
            missing = [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
            if missing:
                raise FileNotFoundError(
                    f"{folder} lists {len(shards)} weight shards in {index} but lacks {missing}: the checkpoint is "
                    "incomplete. Copy or download the missing shards."
                )
            for shard in shards:
                check_whole(os.path.join(folder, shard))
            return
    for name in WEIGHT_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            check_whole(os.path.join(folder, name))


def _same_model(a: str, b: str) -> bool:
    """Whether two names plausibly name one model: equal, the same folder, or the same last path component."""
    a, b = os.fspath(a).rstrip("/\\"), os.fspath(b).rstrip("/\\")
    if a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)):
        return True
    return os.path.basename(a).lower() == os.path.basename(b).lower()


def _expected_shape(module, kind: str):
    """Shape a LoRA tensor of ``kind`` (``lora_A`` ...) must have on ``module``, with ``None`` for the rank."""
    if kind == "lora_A" and hasattr(module, "in_features"):
        return (None, module.in_features)
    if kind == "lora_B" and hasattr(module, "out_features"):
        return (module.out_features, None)
    if kind == "lora_embedding_A" and hasattr(module, "num_embeddings"):
        return (None, module.num_embeddings)
    if kind == "lora_embedding_B" and hasattr(module, "embedding_dim"):
        return (module.embedding_dim, None)
    return None


def check_adapter_fits(model, adapter: str, base_name: str) -> None:
    """Check a local PEFT adapter folder against the base model it is about to be put on.

    Warns when the adapter's ``base_model_name_or_path`` names another model; refuses an adapter
    whose tensors name modules the base lacks or whose shapes do not fit them. A hub id is left to PEFT.

    Raises:
        FileNotFoundError: for an adapter path that does not exist or lacks ``adapter_config.json``.
        ValueError: for tensors that do not fit the base model.
    """
    folder = local_folder(adapter, what="adapter", needs=ADAPTER_CONFIG)
    if folder is None:
        return
    recorded = read_json(os.path.join(folder, ADAPTER_CONFIG)).get("base_model_name_or_path")
    if recorded and base_name and not _same_model(recorded, base_name):
        warnings.warn(
            f"The adapter {adapter!r} was trained on {recorded!r} but is being put on {base_name!r}. An adapter only "
            f"means something on the weights it was trained on: if {base_name!r} is not a copy of {recorded!r}, load "
            f"the adapter's own base model.", UserWarning, stacklevel=3,
        )
    weights = os.path.join(folder, ADAPTER_WEIGHTS[0])
    if not os.path.isfile(weights):
        return
    check_whole(weights)
    modules = dict(model.named_modules())
    parameters = dict(model.named_parameters())
    missing, misfit = [], []
    with safe_open(weights, framework="pt") as f:
        for key in f.keys():
            shape = tuple(f.get_slice(key).get_shape())
            name = key.removeprefix("base_model.model.")
            kind = next((k for k in LORA_KINDS if f".{k}" in name), None)
            if kind is None:  # a fully saved module (modules_to_save): same shape as the base's parameter
                if name in parameters and tuple(parameters[name].shape) != shape:
                    misfit.append(f"{key} is {list(shape)} but the base's {name} is {list(parameters[name].shape)}")
                continue
            module_name = name.split(f".{kind}")[0]
            if module_name not in modules:
                missing.append(module_name)
                continue
            expected = _expected_shape(modules[module_name], kind)
            if expected is not None and any(e is not None and e != s for e, s in zip(expected, shape)):
                misfit.append(f"{key} is {list(shape)} but the base's {module_name} needs {list(expected)} "
                              "(None = the LoRA rank)")
    made_for = f" ({recorded!r})" if recorded else ""
    if missing:
        raise ValueError(
            f"The adapter {adapter!r} adapts {len(set(missing))} modules this base model does not have, e.g. "
            f"{missing[0]!r}: it was made for another architecture{made_for} or another module naming. Load it on "
            "the model it was trained on."
        )
    if misfit:
        raise ValueError(
            f"The adapter {adapter!r} does not fit this base model ({len(misfit)} tensors differ in shape, e.g. "
            f"{misfit[0]}): it was made for another model{made_for}. Load it on the model it was trained on."
        )
