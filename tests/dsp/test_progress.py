import io

from dsp import progress as P


def test_progress_to_a_log_writes_few_whole_lines(monkeypatch):
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(P, "LOG_INTERVAL_S", 0.05)
    for _ in P.progress(range(20000), desc="work", file=log, mininterval=0.05):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = [x for x in text.splitlines() if x]
    assert 1 <= len(lines) < 100 and lines[-1].startswith("work: 100%")


def test_postfix_updates_do_not_flood_a_log(monkeypatch):
    log = io.StringIO()
    bar = P.progress(total=5000, desc="train", file=log, mininterval=0.05)
    for i in range(5000):
        bar.update(1)
        bar.set_postfix(loss=f"{i:.4f}", refresh=False)  # as the training loops call it
    bar.close()
    lines = [x for x in log.getvalue().splitlines() if x]
    assert 1 <= len(lines) < 100
