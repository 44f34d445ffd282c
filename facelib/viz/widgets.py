"""Sliders that work in a live notebook and in CI.

``ipywidgets.interact`` draws into an output widget: in a headless run (nbval, CI) nothing of it
reaches the stored outputs and an exception inside the function is swallowed, so a broken lesson
would pass. :func:`interact` calls the function once with its default values in headless runs
(and raises if it fails); in a live kernel it builds the usual sliders.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable


def headless() -> bool:
    """True in CI or when ``FACELIB_HEADLESS=1``: no one is there to move a slider."""
    flag = os.environ.get("FACELIB_HEADLESS")
    if flag is not None:
        return flag.strip().lower() in {"1", "true", "yes", "on"}
    return bool(os.environ.get("CI"))


def interact(function: Callable[..., Any], **controls: Any) -> Any:
    """Like ``ipywidgets.interact(function, **controls)``, with a headless mode.

    Every parameter of ``function`` that has a control must have a default value: that is the
    value a headless run uses and where a live slider starts.

    Returns:
        In a live kernel the ``ipywidgets.interactive`` object; headless, the function's result.
    """
    signature = inspect.signature(function)
    defaults = {}
    for name in controls:
        if name not in signature.parameters:
            raise TypeError(f"{function.__name__}() has no parameter {name!r}")
        default = signature.parameters[name].default
        if default is inspect.Parameter.empty:
            raise TypeError(f"give {function.__name__}'s parameter {name!r} a default value: sliders start there")
        defaults[name] = default
    if headless():
        print("(sliders appear here in a live notebook; showing the default values)")
        return function(**defaults)
    import ipywidgets

    abbreviations = {}
    for name, control in controls.items():
        if isinstance(control, ipywidgets.Widget):
            control.value = defaults[name]
            abbreviations[name] = control
        else:
            abbreviations[name] = ipywidgets.fixed(control) if control is None else control
    widget = ipywidgets.interactive(function, **abbreviations)
    for child in widget.children:  # ipywidgets orders sliders by the signature: match by name
        name = getattr(child, "description", None)
        if name in defaults and not isinstance(controls[name], ipywidgets.Widget):
            child.value = defaults[name]
    from IPython.display import display

    display(widget)
    return widget
