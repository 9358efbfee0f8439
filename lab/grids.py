"""What each grid of experiments/maze.py is drawn and tabulated as: {figure: [(label, run 'group/name')]},
the first entry of each the reference of its paired changes (tables.py, figures.py). The runs themselves are
launched by experiments/maze.py; the sections named are the paper's (2.2-4.2)."""

NOISES, ENTROPY_COEFS = (0.1, 0.3, 0.5), (0.003, 0.01, 0.03)  # the short grids' baselines
PRIMARY_METHODS = [("Pass@1", "pass1"), ("Pass@k analytical", "passk_analytical"), ("Pass@k bootstrap", "passk_bootstrap"),
                   ("Exceeding Pass@k", "passk_exceeding"), ("PKPO k=4", "pkpo"), ("best-of-N", "best_of_n")]
PRIMARY_BASELINES = [("entropy 0.1", "entropy0.1")]  # tuned baselines run beside the family (experiments/maze.py)
SHORT = {
    "estimators": [("Pass@1", "estimators/pass1"), ("Pass@k full", "estimators/passk_full"),
                   ("Pass@k bootstrap", "estimators/passk_bootstrap"), ("Pass@k analytical", "estimators/passk_analytical")],
    "k": [("k=4", "estimators/passk_analytical"), ("k=2", "k/k2"), ("k=8", "k/k8"), ("k=8, 2x lr", "k/k8-lr2x"),
          ("k=8, 4x lr", "k/k8-lr4x")],
    "implicit": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical"),
                 ("Exceeding Pass@k", "implicit/passk_exceeding"), ("Combination", "implicit/passk_combination"),
                 ("Adaptive (entropy)", "implicit/passk_adaptive"), ("Pass@1 w/o easy", "implicit/pass1_no_easy")],
    "baselines": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical")]
                 + [(f"noise {noise}", f"baselines/noise{noise}") for noise in NOISES]
                 + [(f"entropy {coef}", f"baselines/entropy{coef}") for coef in ENTROPY_COEFS],
    "continual": [("Pass@1 2T", "continual/pass1-2T"), ("Pass@k 2T", "continual/passk-2T"),
                  ("Pass@k T", "estimators/passk_analytical"), ("Pass@k T + Pass@1 T", "continual/passk-then-pass1")],
}
LONG = {
    "estimators": SHORT["estimators"],
    "k": SHORT["k"][:4],
    "implicit": SHORT["implicit"],
    "baselines": SHORT["baselines"][:2] + [("noise 0.3", "baselines/noise0.3"), ("entropy 0.01", "baselines/entropy0.01")],
    "objectives": SHORT["implicit"][:2] + [
        ("PKPO k=4", "objectives/pkpo"), ("PKPO k=8 then 1", "objectives/pkpo-anneal"),
        ("risk-seeking", "objectives/risk_seeking"), ("best-of-N", "objectives/best_of_n"),
        ("W-REINFORCE", "objectives/w_reinforce"), ("MaxRL", "objectives/maxrl"), ("unlikeliness", "objectives/unlikeliness")],
    "continual": [("Pass@1 2T", "estimators/pass1"), ("Pass@k 2T", "estimators/passk_analytical"),
                  ("Pass@k T", "continual/passk-T"), ("Pass@k T + Pass@1 T", "continual/passk-then-pass1")],
}


def comparisons(grid, runs=()):
    """The figures of a grid (experiments/maze.py's mode): {name: [(label, run)]}. runs: the run names the grid
    holds; a tasks grid has one figure per task among them, an unknown grid one per group."""
    if grid == "long":
        return LONG
    if grid == "horizon":
        return {"estimators": [("Pass@1", "estimators/pass1"), ("Pass@k analytical", "estimators/passk_analytical")]}
    if grid == "primary":
        return {"primary": [(label, f"primary/{name}") for label, name in PRIMARY_METHODS + PRIMARY_BASELINES]}
    if grid == "tune":
        return {"tune": [("Pass@1", "tune/pass1")] + [(f"entropy {c}", f"tune/entropy{c}") for c in (0.03, 0.1, 0.3)]
                + [(f"noise {n}", f"tune/noise{n}") for n in (0.1, 0.5)]}
    if grid in ("quick", "full", "smoke"):
        return SHORT
    groups = {}
    for run in sorted(runs):
        groups.setdefault(run.split("/")[0], []).append((run.split("/", 1)[1], run))
    for group, entries in groups.items():  # Pass@1 first: the reference
        entries.sort(key=lambda entry: (entry[0] != "pass1", entry[0]))
        groups[group] = [({"pass1": "Pass@1", "passk_analytical": "Pass@k analytical"}.get(label, label), run)
                         for label, run in entries]
    return groups
