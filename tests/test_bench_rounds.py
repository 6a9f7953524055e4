"""The benchmarks' interleaved rounds (matting.bench.rounds): every call once per round, a pause
before each, and orders that do not keep one candidate behind the same neighbour."""
from matting.bench import rounds


def test_each_call_runs_once_per_round_after_a_pause_and_returns_its_own_seconds(monkeypatch):
    events = []
    monkeypatch.setattr(rounds.time, "sleep", lambda seconds: events.append(("sleep", seconds)))

    def call(name, seconds):
        def run():
            events.append(("run", name))
            return seconds
        return run

    seconds = rounds.time_rounds([call("a", 1.0), call("b", 2.0), call("c", 3.0)], 4)
    assert seconds == [[1.0] * 4, [2.0] * 4, [3.0] * 4]
    assert events[0::2] == [("sleep", rounds.SETTLE_S)] * 12   # a pause before every run
    runs = [name for kind, name in events if kind == "run"]
    assert all(sorted(runs[i:i + 3]) == ["a", "b", "c"] for i in range(0, 12, 3))


def test_orders_are_shuffled_not_rotated_and_repeatable():
    def orders(seed):
        seen = []
        rounds.time_rounds([lambda index=index: seen.append(index) or 0.0 for index in range(5)], 30,
                           settle_s=0, seed=seed)
        return [tuple(seen[i:i + 5]) for i in range(0, 150, 5)]

    first = orders(0)
    assert first == orders(0)            # the same seed, the same orders
    assert first != orders(1)
    # Rotation would give each candidate one predecessor (inside a round); shuffling gives several.
    predecessors = {}
    for order in first:
        for before, after in zip(order, order[1:]):
            predecessors.setdefault(after, set()).add(before)
    assert all(len(seen) >= 3 for seen in predecessors.values())


def test_seconds_of_times_the_call(monkeypatch):
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(rounds.time, "perf_counter", lambda: next(clock))
    assert rounds.seconds_of(lambda: None) == 0.25
