"""Pass: a chain of Reshape/Transpose nodes with two or more Transposes becomes Reshape -> Transpose -> Reshape.

MobileViT unfolds a feature map into patches with reshape, transpose, reshape, transpose, reshape, and folds
it back the same way. Each intermediate Reshape that merges axes the previous Transpose separated costs the
TFLite lowering a TRANSPOSE; the whole chain moves data only once. The pass splits the dimensions into the
finest pieces ("atoms") every shape along the chain is made of, and writes the chain as one Reshape into
atoms, one Transpose of the atoms and one Reshape to the final shape (the lowering then usually needs one
TRANSPOSE, or none). Chains with at most one Transpose (a channel shuffle) are left alone, and so are chains
that would need more than 6 atoms (TFLite's TRANSPOSE takes up to 6 dimensions).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgekit.export.passes.graph_utils import static_shapes
from edgekit.export.passes.result import PassResult

NAME = "collapse_reshape_chains"
_LAYOUT_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")
MAX_ATOMS = 6


def atom_chain(in_shape, steps) -> tuple[list[int], list[int]] | None:
    """Follow ``steps`` (("reshape", shape) or ("transpose", perm)) from ``in_shape``. Returns the atom sizes in
    input order and the final order of the atoms as indices into that list; None when a reshape cuts an atom
    into sizes that do not divide it."""
    sizes: dict[int, int] = {}
    order: list[int] = []  # atom ids in input (row-major) order
    axes: list[list[int]] = []
    for d in in_shape:
        ids = []
        if d != 1:
            sizes[len(sizes)] = int(d)
            ids.append(len(sizes) - 1)
            order.append(ids[0])
        axes.append(ids)
    for kind, arg in steps:
        if kind == "transpose":
            axes = [axes[p] for p in arg]
            continue
        flat = [a for ids in axes for a in ids]
        new_axes: list[list[int]] = []
        pos = 0
        for d in arg:
            ids, product = [], 1
            while product < d:
                if pos >= len(flat):
                    return None
                atom = flat[pos]
                if product * sizes[atom] <= d:
                    ids.append(atom)
                    product *= sizes[atom]
                    pos += 1
                    continue
                need = d // product
                if d % product or sizes[atom] % need:
                    return None
                major, minor = len(sizes), len(sizes) + 1  # split the atom everywhere it appears
                sizes[major], sizes[minor] = need, sizes[atom] // need
                for seq in (order, flat):
                    i = seq.index(atom)
                    seq[i:i + 1] = [major, minor]
                for other in axes:
                    if atom in other:
                        i = other.index(atom)
                        other[i:i + 1] = [major, minor]
                ids.append(major)
                product *= need
                pos += 1
            if product != d:
                return None
            new_axes.append(ids)
        if pos != len(flat):
            return None
        axes = new_axes
    final = [a for ids in axes for a in ids]
    return [sizes[a] for a in order], [order.index(a) for a in final]


def collapse_reshape_chains(model: onnx.ModelProto) -> PassResult:
    """Rewrite every single-reader chain of layout-only nodes holding two or more Transposes (module doc).
    Returns a PassResult with a new model; the input is not modified."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    shapes = static_shapes(out)
    readers: dict[str, int] = {}
    reading: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
            reading.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    producer = {o: node for node in graph.node for o in node.output}
    chains = []
    for node in graph.node:
        if node.op_type not in _LAYOUT_OPS:
            continue
        before = producer.get(node.input[0])
        if before is not None and before.op_type in _LAYOUT_OPS and readers.get(node.input[0]) == 1 and (
                node.input[0] not in outputs):
            continue  # not the start of a chain
        chain = [node]
        while True:
            t = chain[-1].output[0]
            nxt = reading.get(t, [])
            if readers.get(t) != 1 or t in outputs or len(nxt) != 1 or nxt[0].op_type not in _LAYOUT_OPS or (
                    nxt[0].input[0] != t):
                break
            chain.append(nxt[0])
        if sum(n.op_type == "Transpose" for n in chain) >= 2:
            chains.append(chain)
    details = []
    for chain in chains:
        names = [chain[0].input[0]] + [n.output[0] for n in chain]
        if any(n not in shapes for n in names):
            continue
        steps = []
        for n in chain:
            if n.op_type == "Transpose":
                perm = [int(v) for v in helper.get_attribute_value(n.attribute[0])] if n.attribute else list(
                    reversed(range(len(shapes[n.input[0]]))))
                steps.append(("transpose", perm))
            else:
                steps.append(("reshape", shapes[n.output[0]]))
        found = atom_chain(shapes[names[0]], steps)
        if found is None or len(found[0]) > MAX_ATOMS:
            continue
        atoms, perm = found
        first, last = chain[0], chain[-1]
        base = last.output[0]
        atoms_name, moved_name = base + "_atoms", base + "_atoms_moved"
        new_nodes = [
            helper.make_node("Reshape", [first.input[0], atoms_name + "_shape"], [atoms_name],
                             name=(first.name or base) + "_atoms"),
            helper.make_node("Transpose", [atoms_name], [moved_name], perm=perm, name=(first.name or base) + "_move"),
            helper.make_node("Reshape", [moved_name, base + "_shape"], [base], name=(last.name or base) + "_out"),
        ]
        graph.initializer.extend([
            numpy_helper.from_array(np.array(atoms, np.int64), atoms_name + "_shape"),
            numpy_helper.from_array(np.array(shapes[base], np.int64), base + "_shape"),
        ])
        index = list(graph.node).index(first)
        for n in chain:
            graph.node.remove(n)
        for i, n in enumerate(new_nodes):
            graph.node.insert(index + i, n)
        details.append(f"{len(chain)} nodes from {first.name or first.output[0]}: {len(atoms)} atoms, perm {perm}")
    return PassResult(NAME, out, len(details), details)
