"""scripts/gpu_probe.py: training-step throughput by batch size and precision."""

from tests.conftest import load_script


def _module():
    return load_script("gpu_probe")


def test_probe_prints_a_row_per_batch_and_precision(capsys):
    mod = _module()
    assert mod.main(["--batches", "1,2", "--steps", "1", "--seconds", "0.5"]) == 0
    rows = [
        r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "|---" not in r
    ]
    assert rows[0].startswith("| batch |")
    body = [r.split("|")[1:-1] for r in rows[1:]]
    assert [(b.strip(), p.strip()) for b, p, *_ in body] == [
        ("1", "fp32"),
        ("1", "bf16"),
        ("2", "fp32"),
        ("2", "bf16"),
    ]
    for _, precision, sps, hours in body:
        if precision.strip() == "bf16" and sps.strip().startswith("failed: "):
            # a CPU without bf16 kernels for every op (an AVX2-only one has no bf16 LSTM):
            # the row says which error, and the probe goes on
            assert sps.split(":")[1].strip().isidentifier() and not hours.strip()
            continue
        assert float(sps) > 0 and float(hours) > 0


def test_probe_times_the_loader_on_a_corpus(mini_corpus, capsys):
    mod = _module()
    args = ["--batches", "1", "--steps", "1", "--seconds", "0.5", "--corpus", str(mini_corpus)]
    assert mod.main(args) == 0
    line = [r for r in capsys.readouterr().out.splitlines() if r.startswith("loader:")]
    assert len(line) == 1 and float(line[0].split()[1]) > 0
