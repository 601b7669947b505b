"""The model lists of the app: every processor by the name the engine loads it by, shown with
its teacher when it learnt from one (``kd  ·  teacher: teacher, layer 4``), and the default
A/B pair: the baseline against the best SSL-informed model shipped."""

from __future__ import annotations

import json

from PySide6 import QtCore, QtWidgets

from models.checkpoint import SHIPPED_DIR, read_metadata, shipped_models
from models.processor import available_peers

SPEC_ROLE = QtCore.Qt.UserRole


def processor_choices() -> list[str]:
    return [*shipped_models(), "bypass", *available_peers()]


def teacher_label(spec: str) -> str:
    """' · teacher: NAME, layer L' for a shipped model that learnt from a teacher, else ''."""
    path = shipped_models().get(spec)
    if path is None:
        return ""
    try:
        rec = read_metadata(path).get("teacher")
        t = json.loads(rec) if rec else None
    except (ValueError, OSError):
        return ""
    if not t:
        return ""
    kind = "causal " if t.get("causal") else ""
    return f"  ·  {kind}teacher: {t.get('teacher')}, layer {t.get('layer')}"


def default_pair() -> tuple[str, str]:
    """(A, B) for a first start: ``models/shipped/default_ab.json`` (written when the models
    are shipped: the baseline and the SSL-informed model that measured best), else baseline
    against bypass."""
    path = SHIPPED_DIR / "default_ab.json"
    shipped = shipped_models()
    if path.exists():
        d = json.loads(path.read_text())
        if d.get("a") in shipped and d.get("b") in shipped:
            return d["a"], d["b"]
    return (next(iter(shipped), "bypass"), "bypass")


class ModelCombo(QtWidgets.QComboBox):
    """An editable list of processors: ``spec()`` is what the engine loads (a name, or a
    checkpoint path typed in)."""

    def __init__(self, choices: list[str], parent=None):
        super().__init__(parent)
        self.setEditable(True)
        for c in choices:
            self.addItem(c + teacher_label(c), c)

    def spec(self) -> str:
        i = self.currentIndex()
        if i >= 0 and self.itemText(i) == self.currentText():
            return str(self.itemData(i, SPEC_ROLE))
        return self.currentText().strip()

    def set_spec(self, spec: str) -> None:
        i = self.findData(spec, SPEC_ROLE)
        if i >= 0:
            self.setCurrentIndex(i)
        else:
            self.setEditText(spec)
