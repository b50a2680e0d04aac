from gateway.pixels import model as M
from gateway.pixels.boxes import Box
def refine_tag(grey, box, confident=None, cell_origin=(0, 0), stride=M.STRIDE, unsure_margin=M.UNSURE_MARGIN):
    b = [box.x0, box.y0, min(box.x1, grey.shape[1]), min(box.y1, grey.shape[0])]
    for side in ("top", "bottom", "left", "right"):
        M._shrink_side(grey, b, side)
    fitted = Box(b[0], b[1], b[2], b[3], box.score, box.source)
    pieces = M._split_lines(grey, fitted)
    if pieces is not None:
        return [Box(p.x0, p.y0, p.x1, p.y1, p.score, "flat") for p in pieces]
    busy = M._split_busy(grey, fitted)
    kind = "busy"
    if busy is None:
        busy, kind = [fitted], "coarse-noink"
    elif confident is not None and not M._covers(busy, confident, *cell_origin, stride):
        busy, kind = [fitted], "coarse-uncovered"
    rows, cols = grey.shape
    m = unsure_margin
    return [Box(max(0, p.x0 - m), max(0, p.y0 - m), min(cols, p.x1 + m), min(rows, p.y1 + m), p.score, kind) for p in busy]
M.refine_box = refine_tag
