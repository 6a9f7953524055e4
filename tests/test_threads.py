"""The thread policy (matting.threads): per library, cores from affinity and the cgroup quota, the override."""
import pytest

from matting import threads as policy
from matting.errors import MattingError


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine with ``cores`` CPUs in the affinity set and an optional cgroup v2 quota line."""
    def make(cores: int, cpu_max: str | None = None, v1: tuple[int, int] | None = None):
        monkeypatch.delenv("MATTING_THREADS", raising=False)
        monkeypatch.setattr(policy.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        v2 = tmp_path / "cpu.max"
        quota, period = tmp_path / "quota", tmp_path / "period"
        for path in (v2, quota, period):
            path.unlink(missing_ok=True)
        if cpu_max is not None:
            v2.write_text(cpu_max + "\n")
        if v1 is not None:
            quota.write_text(f"{v1[0]}\n")
            period.write_text(f"{v1[1]}\n")
        monkeypatch.setattr(policy, "CGROUP_V2_CPU_MAX", v2)
        monkeypatch.setattr(policy, "CGROUP_V1_QUOTA", quota)
        monkeypatch.setattr(policy, "CGROUP_V1_PERIOD", period)
    return make


@pytest.mark.parametrize("cores, numba, onnxruntime, torch_idle, torch_busy", [
    (1, 1, 1, 1, 1), (2, 1, 2, 2, 1), (3, 1, 2, 1, 1), (4, 2, 2, 2, 2), (8, 4, 4, 4, 4), (16, 8, 8, 8, 8),
    (64, 8, 8, 8, 8),
])
def test_counts_per_library(machine, monkeypatch, cores, numba, onnxruntime, torch_idle, torch_busy):
    machine(cores)
    assert policy.available_cores() == cores
    assert policy.threads() == numba
    assert policy.onnxruntime_threads() == onnxruntime
    monkeypatch.setattr(policy, "cores_idle", lambda: True)
    assert policy.torch_threads() == torch_idle
    monkeypatch.setattr(policy, "cores_idle", lambda: False)
    assert policy.torch_threads() == torch_busy


@pytest.fixture
def kernel_files(monkeypatch, tmp_path):
    """Fake /proc/loadavg, /proc/self/task and PSI files."""
    def make(running: int, own_states: list[str], pressure: str | None):
        loadavg = tmp_path / "loadavg"
        loadavg.write_text(f"0.50 0.40 0.30 {running}/321 4242\n")
        tasks = tmp_path / "task"
        if tasks.exists():
            for child in tasks.iterdir():
                (child / "stat").unlink()
                child.rmdir()
        tasks.mkdir(exist_ok=True)
        for i, state in enumerate(own_states):
            (tasks / str(i)).mkdir()
            (tasks / str(i) / "stat").write_text(f"{100 + i} (python3 (worker)) {state} 1 2 3 4\n")
        psi = tmp_path / "cpu.pressure"
        psi.unlink(missing_ok=True)
        if pressure is not None:
            psi.write_text(f"some avg10={pressure} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 "
                           "avg300=0.00 total=0\n")
        monkeypatch.setattr(policy, "LOADAVG", loadavg)
        monkeypatch.setattr(policy, "OWN_TASKS", tasks)
        monkeypatch.setattr(policy, "CPU_PRESSURE_FILES", (tmp_path / "absent", psi))
    return make


def test_cores_idle_counts_other_processes_only(kernel_files):
    kernel_files(running=3, own_states=["R", "S", "R", "R"], pressure="0.00")  # all three are ours
    assert policy.other_runnable_tasks() == 0 and policy.cores_idle()
    kernel_files(running=2, own_states=["R", "S"], pressure="0.00")  # someone else is running
    assert policy.other_runnable_tasks() == 1 and not policy.cores_idle()
    kernel_files(running=1, own_states=["R"], pressure="12.50")  # nobody now, but tasks waited lately
    assert policy.cpu_pressure() == 12.5 and not policy.cores_idle()
    kernel_files(running=1, own_states=["R"], pressure=None)  # no PSI: the task count decides
    assert policy.cpu_pressure() is None and policy.cores_idle()


def test_cores_idle_is_false_where_linux_does_not_say(kernel_files, monkeypatch, tmp_path):
    kernel_files(running=1, own_states=["R"], pressure="0.00")
    monkeypatch.setattr(policy, "LOADAVG", tmp_path / "no-such-file")
    assert policy.other_runnable_tasks() is None and not policy.cores_idle()


def test_a_container_quota_caps_the_cores(machine):
    machine(64, "200000 100000")  # a 2-CPU Space on a 64-core host
    assert policy.available_cores() == 2
    assert (policy.threads(), policy.onnxruntime_threads()) == (1, 2)
    machine(64, "150000 100000")  # 1.5 CPUs: rounded up
    assert policy.available_cores() == 2
    machine(4, "max 100000")  # no quota
    assert policy.available_cores() == 4
    machine(64, v1=(400000, 100000))  # cgroup v1
    assert policy.available_cores() == 4
    machine(64, v1=(-1, 100000))  # v1 without a quota
    assert policy.available_cores() == 64
    machine(8, "garbage")  # unreadable: the affinity set stands
    assert policy.available_cores() == 8
    machine(2, "800000 100000")  # a quota above the affinity set does not add cores
    assert policy.available_cores() == 2


def test_the_override_applies_to_every_library(machine, monkeypatch):
    machine(2)
    monkeypatch.setenv("MATTING_THREADS", "3")
    assert (policy.threads(), policy.onnxruntime_threads(), policy.torch_threads()) == (3, 3, 3)
    monkeypatch.setenv("MATTING_THREADS", "0")
    assert policy.threads() == 1
    monkeypatch.setenv("MATTING_THREADS", "two")
    with pytest.raises(MattingError, match="MATTING_THREADS='two' is not a whole number"):
        policy.onnxruntime_threads()


def test_limit_numba_sets_the_calling_threads_count(machine, monkeypatch):
    numba = pytest.importorskip("numba")
    machine(2)
    previous = numba.get_num_threads()
    try:
        assert policy.limit_numba() == 1 and numba.get_num_threads() == 1
        monkeypatch.setenv("MATTING_THREADS", "2")
        expected = min(2, numba.config.NUMBA_NUM_THREADS)
        assert policy.limit_numba() == expected and numba.get_num_threads() == expected
    finally:
        numba.set_num_threads(previous)


def test_the_threads_bench_prints_a_row_per_count_and_stops_its_spinners(capsys):
    import subprocess

    from matting.bench import threads as bench

    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    bench.subprocess.Popen = popen
    try:
        assert bench.main(["--busy", "0", "1", "--rounds", "1", "--libraries", "numba"]) == 0
    finally:
        bench.subprocess.Popen = real_popen
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("numba")]
    counts = sorted({1, policy.available_cores()})
    assert [int(row[1]) for row in rows] == counts and all(len(row) == 4 for row in rows)
    assert ("ratio" in out) == (len(counts) > 1)
    assert len(started) == 1 and started[0].poll() is not None  # the one spinner was killed
