"""Export a (compressed) model so that plain PyTorch or another runtime loads it without the workbench.

Three formats:

``"pt2"``
    :func:`torch.export.export` saved with :func:`torch.export.save`; load with
    ``torch.export.load(path).module()``. Shapes are those of the example input.
``"onnx"``
    :func:`torch.onnx.export` (the dynamo exporter, falling back to the TorchScript one); run with
    onnxruntime or any ONNX runtime. Needs ``onnx`` and ``onnxscript`` (``onnxruntime`` to verify).
``"module"``
    a folder with ``module.py`` (a generated, self-contained ``nn.Module`` class that imports only torch)
    and ``state_dict.pt`` (tensors only, loads with ``weights_only=True``)::

        import sys, torch
        sys.path.insert(0, "exported")
        import module
        model = module.CifarResNet()
        model.load_state_dict(torch.load("exported/state_dict.pt", weights_only=True))

Every export loads what it wrote the way a user would and compares its outputs with the model's on the
example input; files are written atomically and a failed export leaves nothing behind. Weight
parametrizations (pruning masks, quantizers) are baked into plain weights first.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import logging
import math
import os
import re
import shutil
import stat
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.errors import ExportError, WorkbenchError, closest
from workbench.utils import TEMP_NAME, check_path, check_writable_target, own_class

FORMATS = ("pt2", "onnx", "module")
#: The file name suffix of each format that writes one file; a path ending in another format's suffix is refused.
SUFFIXES = {"pt2": ".pt2", "onnx": ".onnx"}
MODULE_FILES = ("module.py", "state_dict.pt")
RTOL = 1e-4
_PT2_HINT = 'export it with format="pt2" instead (torch.export follows any Python code)'
_STDLIB_OK = {"builtins", "math", "operator"}  # the generated module may import these besides torch


# ----------------------------------------------------------------------------------------------- paths


def _check_path(path: Any, fmt: str) -> Path:
    """``path`` as a Path; ExportError saying why when it is not a usable path (:func:`workbench.utils.check_path`),
    is named for another format (``m.onnx`` for a pt2 program), or exists and is not ours to replace."""
    path = check_path(path, "the export path", ExportError)
    named = next((other for other, suffix in SUFFIXES.items() if path.suffix.lower() == suffix), None)
    if named is not None and named != fmt:
        kinds = {"pt2": "a torch.export program", "onnx": "an ONNX file", "module": "a folder"}
        raise ExportError(
            f"{path.name} is named as {kinds[named]}, but format={fmt!r} writes {kinds[fmt]}: name it "
            f"{path.stem}{SUFFIXES.get(fmt, '')}, or pass format={named!r}."
        )
    if fmt != "module":
        return check_writable_target(path, error=ExportError)  # nor a device, folder or read-only file
    if not os.path.lexists(path):
        return path
    mode = os.stat(path).st_mode if path.exists() else 0
    if not stat.S_ISDIR(mode):
        raise ExportError(f"{path} exists and is not a folder; the module format writes a folder: give another path.")
    others = sorted(p.name for p in path.iterdir() if p.name not in (*MODULE_FILES, "__pycache__"))
    if others:
        raise ExportError(
            f"{path} is a folder with other files ({', '.join(others[:5])}); the module export replaces the whole "
            "folder, so give a new or empty folder, or one written by a previous module export."
        )
    return path


@contextlib.contextmanager
def _staged(path: Path, folder: bool) -> Iterator[Path]:
    """A temporary file (or folder) beside ``path`` that replaces ``path`` when the block succeeds and is
    removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:TEMP_NAME]}.", suffix=".tmp", dir=path.parent))
    staged = tmp if folder else tmp / path.name
    try:
        yield staged
        if folder:
            old = path.with_name(f".{path.name[:TEMP_NAME]}.{uuid.uuid4().hex}.old")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes the folder private; give it the usual permissions
            moved = path.exists()
            if moved:
                os.replace(path, old)  # a folder cannot replace a non-empty one: move it aside first
            try:
                os.replace(tmp, path)
            except OSError:
                if moved:
                    os.replace(old, path)  # put the earlier export back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------- comparison


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a (nested) output, in order: a tensor, a tuple / list, or a dict."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    raise ExportError(
        f"the model returns a {type(value).__name__}; export supports outputs made of tensors "
        "(a tensor, or tuples, lists and dicts of tensors)."
    )


def _compare(expected: list[torch.Tensor], got: list[Any], what: str) -> None:
    """ExportError unless ``got`` (tensors or arrays) matches ``expected`` within RTOL of each output's scale."""
    if len(got) != len(expected):
        raise ExportError(f"{what} returns {len(got)} outputs, the model {len(expected)}; the export is not usable.")
    for index, (want, have) in enumerate(zip(expected, got)):
        have = torch.as_tensor(have).detach().cpu()
        want = want.detach().cpu()
        if tuple(have.shape) != tuple(want.shape):
            raise ExportError(
                f"{what}: output {index} has shape {tuple(have.shape)}, the model's {tuple(want.shape)}; "
                "the export is not usable."
            )
        if not want.is_floating_point():
            ok = torch.equal(have.to(want.dtype), want)
            error = 0.0 if ok else float("inf")
        else:
            want64, have64 = want.double(), have.double()
            both_nan = want64.isnan() & have64.isnan()  # NaN where the model gives NaN is a match
            want64, have64 = want64.masked_fill(both_nan, 0), have64.masked_fill(both_nan, 0)
            scale = max(float(want64.abs().max()) if want64.numel() else 0.0, 1e-6)
            error = float((have64 - want64).abs().max()) / scale if want64.numel() else 0.0
            rtol = max(RTOL, 8 * torch.finfo(want.dtype).eps)  # half precision cannot reach 1e-4
            ok = error <= rtol
        if not ok:
            raise ExportError(
                f"{what}: output {index} differs from the model's by {error:.3g} (relative to its largest value); "
                "the exported file does not compute the same function. Try another format, and report the model."
            )


# ------------------------------------------------------------------------------------------- helpers


def _prepared(model: nn.Module, device: torch.device | None) -> nn.Module:
    """An eval-mode copy of ``model`` (on ``device`` if given) with weight parametrizations baked in."""
    from torch.nn.utils import parametrize

    try:
        copied = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - any failure of a user's __deepcopy__ is reported the same way
        raise ExportError(
            f"cannot copy the {type(model).__name__} to export it ({type(exc).__name__}: {str(exc)[:200]}); "
            "make it copyable with copy.deepcopy."
        ) from None
    for module in copied.modules():
        if parametrize.is_parametrized(module):
            own_class(module)  # removing on a copy would otherwise change the original's class
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if device is not None:
        copied = copied.to(device)
    return copied.eval()


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _example(model: nn.Module, example_input: torch.Tensor | None) -> torch.Tensor:
    """``example_input`` (or a zoo example of the model's ``input_shape``), in the model's floating dtype."""
    if example_input is None:
        if getattr(model, "input_shape", None) is None:
            raise ExportError(
                f"{type(model).__name__} has no `input_shape` attribute, so export cannot make an example input; "
                "pass one: export_model(model, path, example_input=torch.randn(1, ...))."
            )
        from workbench.zoo import example_input as zoo_example_input

        example_input = zoo_example_input(model)
    if not isinstance(example_input, torch.Tensor):
        raise ExportError(f"example_input must be a torch.Tensor, got {type(example_input).__name__}.")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if example_input.is_floating_point() and len(dtypes) == 1 and example_input.dtype not in dtypes:
        example_input = example_input.to(dtypes.pop())  # a float32 example for a half model, say
    return example_input.detach()


def _run(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        try:
            return [t.detach().cpu() for t in _tensors(model(x))]
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's forward can fail in any way
            raise ExportError(
                f"the model fails on the example input of shape {tuple(x.shape)} ({type(exc).__name__}: "
                f"{str(exc)[:300]}); pass an example_input the model accepts."
            ) from None


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence the exporters' progress logs and deprecation warnings (errors still propagate)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ----------------------------------------------------------------------------------------------- pt2


def _export_pt2(model: nn.Module, x: torch.Tensor, staged: Path, expected: list[torch.Tensor]) -> None:
    try:
        with _quiet_exporters():
            program = torch.export.export(model, (x,))
    except Exception as exc:  # noqa: BLE001 - torch.export fails with many exception types
        raise ExportError(
            f"torch.export cannot capture {type(model).__name__} ({type(exc).__name__}: {str(exc)[:400]}); "
            "make its forward free of data-dependent Python control flow, or try format='onnx'."
        ) from None
    torch.export.save(program, staged)
    loaded = torch.export.load(staged).module()
    _compare(expected, _run(loaded, x), "the saved .pt2 program")


# ---------------------------------------------------------------------------------------------- onnx


def _require(*packages: str) -> None:
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"the ONNX export needs {' and '.join(missing)}: pip install {' '.join(missing)} "
            "(and onnxruntime to verify the file), or export with format='pt2' or 'module'."
        )


def opset_range() -> tuple[int, int]:
    """The lowest and highest ONNX opset versions this torch's exporters write."""
    try:
        from torch.onnx import _constants
    except ImportError:  # a torch that keeps them elsewhere: the range every exporter since torch 2.5 writes
        return 7, 18
    return int(getattr(_constants, "ONNX_MIN_OPSET", 7)), int(getattr(_constants, "ONNX_MAX_OPSET", 18))


def _check_opset(opset: Any) -> None:
    low, high = opset_range()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise ExportError(
            f"opset={opset!r} is not an ONNX opset this torch exports: give an int from {low} to {high}, or leave it "
            "out for the exporter's default."
        )


def _written_opset(path: Path) -> int | None:
    """The default-domain opset of the ONNX file at ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def _export_onnx(
    model: nn.Module, x: torch.Tensor, staged: Path, expected: list[torch.Tensor], opset: int | None
) -> None:
    _require("onnx", "onnxscript")
    failures = []
    for dynamo in (True, False):
        options = {"dynamo": dynamo, "opset_version": opset, "input_names": ["input"]}
        if dynamo:
            options["external_data"] = False  # one file, so that it is replaced atomically
        name = "dynamo" if dynamo else "TorchScript"
        try:
            with _quiet_exporters():
                torch.onnx.export(model, (x,), str(staged), **options)
        except Exception as exc:  # noqa: BLE001 - either exporter fails with many exception types
            failures.append(f"{name} exporter: {type(exc).__name__}: {str(exc)[:300]}")
            staged.unlink(missing_ok=True)
            continue
        written = _written_opset(staged) if opset is not None else opset
        if written == opset:
            break
        failures.append(f"{name} exporter: wrote opset {written}, not the {opset} asked")  # it converts to few opsets
        staged.unlink(missing_ok=True)
    else:
        raise ExportError(
            f"torch.onnx.export cannot export {type(model).__name__} ({'; '.join(failures)}); "
            "try format='pt2', or a different opset."
        )
    if importlib.util.find_spec("onnxruntime") is None:
        import onnx

        onnx.checker.check_model(str(staged))
        warnings.warn(
            "onnxruntime is not installed, so the ONNX file was checked but not run: pip install onnxruntime "
            "to verify its outputs.",
            UserWarning,
            stacklevel=3,
        )
        return
    import onnxruntime

    session = onnxruntime.InferenceSession(str(staged), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    _compare(expected, outputs, "the ONNX file run by onnxruntime")


# -------------------------------------------------------------------------------------------- module


def _literal(value: Any) -> str:
    """Python source for a constructor argument value; ExportError for a value source cannot spell."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, torch.Size):
        value = tuple(value)
    if isinstance(value, list):
        return f"[{', '.join(map(_literal, value))}]"
    if isinstance(value, tuple):
        return f"({', '.join(map(_literal, value))}{',' if len(value) == 1 else ''})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"a {type(value).__name__} argument")


def _leaf_source(path: str, module: nn.Module) -> str:
    """``torch.nn.<Class>(arg=value, ...)`` that rebuilds the torch.nn layer ``module``, checked by building
    it and comparing its settings and tensor shapes with the original's."""
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls:
        raise ExportError(
            f"layer {path!r} is a {cls.__module__}.{cls.__qualname__}, which the generated module cannot build "
            f"with torch.nn alone; {_PT2_HINT}."
        )
    floating = {t.dtype for t in module.state_dict().values() if t.is_floating_point()}
    arguments: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if (
            name in ("self", "device")
            or name.startswith("_")
            or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ):
            continue
        if name == "dtype":
            if len(floating) == 1 and torch.get_default_dtype() not in floating:
                arguments["dtype"] = next(iter(floating))
            continue
        default = parameter.default
        if not hasattr(module, name):
            if default is parameter.empty:
                raise ExportError(
                    f"layer {path!r} ({cls.__name__}) does not record its argument {name!r}; {_PT2_HINT}."
                )
            continue
        value = getattr(module, name)
        if isinstance(value, torch.Tensor) or (value is None and isinstance(default, bool)):
            value = value is not None  # bias=... of Conv, Linear, norms: a tensor or None
        if default is not parameter.empty and type(value) is type(default) and value == default:
            continue
        arguments[name] = value
    try:
        source = f"torch.nn.{cls.__name__}({', '.join(f'{k}={_literal(v)}' for k, v in arguments.items())})"
    except TypeError as exc:
        raise ExportError(f"layer {path!r} ({cls.__name__}) has {exc}; {_PT2_HINT}.") from None
    rebuilt = cls(**arguments)  # the layer the source builds, to compare with the original
    if not _same_layer(module, rebuilt):
        raise ExportError(
            f"layer {path!r} ({module!r}) cannot be rebuilt from its constructor arguments (got {rebuilt!r}); "
            f"{_PT2_HINT}."
        )
    return source


def _same_layer(a: nn.Module, b: nn.Module) -> bool:
    """Same class, same plain settings, same tensor names, shapes and dtypes."""
    return type(a) is type(b) and _settings(a) == _settings(b) and repr(a) == repr(b)


def _settings(module: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """A layer's plain attributes (numbers, strings, tuples) and its tensors' shapes and dtypes."""
    plain = (bool, int, float, str, tuple, type(None))
    values = {
        k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training" and isinstance(v, plain)
    }
    return values, {k: (tuple(t.shape), t.dtype) for k, t in module.state_dict().items()}


def _import_lines(globals_: dict[str, Any], source: str) -> list[str]:
    """Import statements for the names the traced forward uses (torch, math, operator and builtins only)."""
    lines = []
    for name, value in sorted(globals_.items()):
        if name == "torch" or not _uses(source, name):
            continue
        if isinstance(value, float):
            lines.append(f'{name} = float("{value}")')
        elif value is type(None):
            lines.append(f"{name} = type(None)")
        elif inspect.ismodule(value) and value.__name__.split(".")[0] in {"torch", *_STDLIB_OK}:
            lines.append(f"import {value.__name__} as {name}")
        else:
            origin = getattr(value, "__module__", None) or ""
            qualname = getattr(value, "__qualname__", "")
            if origin.split(".")[0] not in {"torch", *_STDLIB_OK} or "." in qualname:
                raise ExportError(
                    f"the traced forward calls {origin}.{qualname or value!r}, which a module importing only torch "
                    f"cannot reach; {_PT2_HINT}."
                )
            if origin != "builtins" or name != qualname:
                lines.append(f"from {origin} import {qualname} as {name}")
    return lines


def _uses(source: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", source) is not None


def _class_name(model: nn.Module) -> str:
    name = type(model).__name__
    return name if name.isidentifier() and not name.startswith("_") else "ExportedModel"


_MODULE_TEMPLATE = '''"""{class_name}, exported by the workbench ({origin}).

Self-contained: it imports only torch. Rebuild the network and load its weights with::

    model = {class_name}()
    model.load_state_dict(torch.load("state_dict.pt", weights_only=True))

The forward was traced in eval mode; the model starts in eval mode (call .train() to fine-tune).
"""

{imports}


def _parent(root: torch.nn.Module, path: str) -> tuple[torch.nn.Module, str]:
    """The module that holds the dotted ``path`` (empty modules are created on the way) and the last name."""
    *parents, name = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, torch.nn.Module())
        root = getattr(root, part)
    return root, name


def _add(root: torch.nn.Module, path: str, module: torch.nn.Module) -> None:
    """Attach ``module`` at the dotted ``path``."""
    parent, name = _parent(root, path)
    parent.add_module(name, module)


def _tensor(root: torch.nn.Module, path: str, shape: tuple, dtype: torch.dtype, parameter: bool) -> None:
    """Register an empty parameter or buffer at the dotted ``path`` (filled by load_state_dict)."""
    parent, name = _parent(root, path)
    value = torch.empty(shape, dtype=dtype)
    if parameter:
        parent.register_parameter(name, torch.nn.Parameter(value, requires_grad=value.is_floating_point()))
    else:
        parent.register_buffer(name, value)


class {class_name}(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
{body}
        self.eval()

{forward}
'''


def _module_files(model: nn.Module) -> tuple[str, dict[str, torch.Tensor]]:
    """The source of ``module.py`` and the state dict it loads, for the eval-mode CPU ``model``."""
    from torch import fx

    from workbench.graph.trace import default_arguments

    try:
        traced = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - fx fails with many exception types; retry with keywords at defaults
        traced = None
    try:
        if traced is None:  # forward(x, return_features=False): the module keeps the default's branch
            traced = fx.symbolic_trace(model, concrete_args=default_arguments(model))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"torch.fx cannot trace {type(model).__name__}, so no module source can be written "
            f"({type(exc).__name__}: {str(exc)[:300]}); {_PT2_HINT}."
        ) from None
    for node in traced.graph.nodes:
        node.type = None  # annotations may name the user's imports (or be strings); the source needs none
    code = traced.graph.python_code(root_module="self")
    leaves: dict[str, nn.Module] = {}
    tensors: dict[str, torch.Tensor] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            leaves[node.target] = traced.get_submodule(node.target)
        elif node.op == "get_attr":
            tensors[node.target] = _attribute(traced, node.target)
    body, state = [], {}
    for path, leaf in leaves.items():
        body.append(f'_add(self, "{path}", {_leaf_source(path, leaf)})')
        state.update(leaf.state_dict(prefix=f"{path}."))
    for path, value in tensors.items():
        if any(path.startswith(f"{leaf}.") for leaf in leaves):
            continue  # a tensor of a layer built above
        if not isinstance(value, torch.Tensor):
            raise ExportError(
                f"the traced forward reads {path!r}, a {type(value).__name__}, not a tensor; {_PT2_HINT}."
            )
        parameter = isinstance(value, nn.Parameter)
        body.append(f'_tensor(self, "{path}", {_literal(tuple(value.shape))}, {value.dtype}, parameter={parameter})')
        state[path] = value
    forward = "\n".join(f"    {line}" if line.strip() else "" for line in code.src.strip("\n").splitlines())
    origin = f"{type(model).__module__}.{type(model).__qualname__}"
    source = _MODULE_TEMPLATE.format(
        class_name=_class_name(model),
        origin=origin,
        imports="\n".join(["import torch", *_import_lines(code.globals, code.src)]),
        body="\n".join(f"        {line}" for line in body) or "        pass",
        forward=forward,
    )
    return source, {k: v.detach().clone().contiguous() for k, v in state.items()}


def _attribute(root: nn.Module, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def _export_module(model: nn.Module, x: torch.Tensor, staged: Path, expected: list[torch.Tensor]) -> None:
    source, state = _module_files(model)
    (staged / "module.py").write_text(source)
    torch.save(state, staged / "state_dict.pt")
    spec = importlib.util.spec_from_file_location(f"_workbench_export_{uuid.uuid4().hex}", staged / "module.py")
    namespace = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(namespace)
        loaded = getattr(namespace, _class_name(model))()
        loaded.load_state_dict(torch.load(staged / "state_dict.pt", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - a generated module that does not load is our bug, said plainly
        raise ExportError(
            f"the generated module does not load ({type(exc).__name__}: {str(exc)[:300]}); {_PT2_HINT}."
        ) from None
    _compare(expected, _run(loaded, x), "the generated module with its state dict")


# ------------------------------------------------------------------------------------------------ api


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    format: str = "pt2",
    example_input: torch.Tensor | None = None,
    opset: int | None = None,
) -> Path:
    """Write ``model`` in a format that plain PyTorch or an ONNX runtime loads, and check it.

    Parameters
    ----------
    model
        Any ``nn.Module`` (e.g. the result of :func:`workbench.surgery.apply`), on any device; it is not
        changed (a copy is exported, in eval mode, with weight parametrizations baked in).
    path
        The ``.pt2`` or ``.onnx`` file, or for ``"module"`` the folder (created; replaced only when it
        holds nothing but a previous module export).
    format
        ``"pt2"`` (torch.export, on the model's device), ``"onnx"`` or ``"module"`` (both on the CPU).
    example_input
        An input batch; default: a random one of the model's ``input_shape`` (zoo models).
    opset
        ONNX opset version (default: the exporter's), within :func:`opset_range`; the file written has
        exactly this opset (the dynamo exporter converts to few opsets, so the TorchScript one is tried next).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ExportError
        Unknown format, no example input, an output path that cannot be replaced or is named for another
        format (``m.onnx`` for a pt2 program), an opset outside :func:`opset_range` or that no exporter
        writes, a model the format's tracer cannot capture, missing ONNX packages, or a written file whose
        outputs differ from the model's (relative difference above 1e-4) when loaded back.
    """
    if format not in FORMATS:
        raise ExportError(
            f"unknown export format {format!r}; use one of {', '.join(FORMATS)}.{closest(format, FORMATS)}"
        )
    if not isinstance(model, nn.Module):
        raise ExportError(f"export_model takes an nn.Module, got {type(model).__name__}.")
    if opset is not None and format != "onnx":
        raise ExportError(f"opset={opset} applies to format='onnx' only; leave it out for {format!r}.")
    if opset is not None:
        _check_opset(opset)
    path = _check_path(path, format)
    x = _example(model, example_input)
    device = _device_of(model) if format == "pt2" else torch.device("cpu")
    prepared = _prepared(model, device)
    x = x.to(device)
    expected = _run(prepared, x)
    with _staged(path, folder=format == "module") as staged:
        if format == "pt2":
            _export_pt2(prepared, x, staged, expected)
        elif format == "onnx":
            _export_onnx(prepared, x, staged, expected, opset)
        else:
            _export_module(prepared, x, staged, expected)
    return path


__all__ = ["FORMATS", "SUFFIXES", "export_model", "opset_range"]
