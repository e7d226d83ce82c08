"""Every file and folder name of a run folder, defined once (imports nothing of the package).

::

    runs/<run_id>/
        .lock, .lock.json           held while a process writes the run; who holds it (pid, start, command)
        params.yaml                 the series' parameters (cellclf run), or the first stage's
        folds.csv                   id,fold,group,label: drawn once, read by every stage
        index.html                  the report
        <stage>/                    one folder per notebook, named like it (01_eda_colour, ...)
            notebook.ipynb          the executed notebook (papermill)
            notebook.html           its page
            kernel.log              the kernel process's own output (library start-up lines)
            job.log, job.json       --executor ray: the stage job's output; where and when it ran (pid, host, attempt)
            params.json             the stage's validated parameters (written first)
            oof.csv                 id,fold,label,p_<class>...: out-of-fold probabilities
            test.csv                id,p_<class>...: test probabilities (mean over folds)
            history.csv             per fold and epoch: losses, scores, learning rate, phase
            fold_times.csv          per fold: best epoch, seconds, images/s, compiles, resumed
            figures/<name>.png      the figures metrics.json lists
            combiner.json           07: the submitted model (a member, or a combiner and its fitted values)
            combiner.skops          07: the fitted stacking model, when the submitted model stacks
            features.keras          02c: the frozen feature extractor its classifiers read
            fold<k>/                one per fold of a trained stage
                model.keras         the fold's kept model for inference (Keras stages; no augmentation)
                model.skops         the fold's fitted scikit-learn pipeline (02b, 02c)
                preds.npz           val_idx, val, val_plain[, test]
                history.csv         the fold's epochs
                progress.json       while the fold trains: its epoch and last score (removed when the stage ends)
                done.json           written last: the fold is finished
                job.log, job.json   --executor ray: the fold job's output; where and when it ran
            <teacher>/round<r>/fold<k>/   06: the student's folds, per teacher and round
            metrics.json            written last: the stage is finished when it is there and readable
"""

PARAMS_YAML = "params.yaml"
RUN_LOCK = ".lock"
RUN_LOCK_INFO = ".lock.json"
FOLDS_CSV = "folds.csv"
INDEX_HTML = "index.html"

NOTEBOOK = "notebook.ipynb"
NOTEBOOK_HTML = "notebook.html"
KERNEL_LOG = "kernel.log"
JOB_LOG = "job.log"                # --executor ray: a job's output, in its stage's or fold's folder
JOB_INFO = "job.json"              # --executor ray: the job's last attempt (pid, host, attempt, started)
PROGRESS = "progress.json"
STAGE_PARAMS = "params.json"
METRICS = "metrics.json"
OOF = "oof.csv"
TEST = "test.csv"
HISTORY = "history.csv"
FOLD_TIMES = "fold_times.csv"
FIGURES = "figures"
LEADERBOARD = "leaderboard.csv"        # 07
SUBMISSION = "submission.csv"          # 07
PSEUDO_TABLE = "pseudo_labelling.csv"  # 06
QUALITY_HTML = "quality.html"          # 01
COMBINER = "combiner.json"             # 07
COMBINER_STACKER = "combiner.skops"    # 07
FEATURES_MODEL = "features.keras"      # 02c

FOLD_MODEL = "model.keras"         # Keras stages: keras.saving.load_model reads it
FOLD_PIPELINE = "model.skops"      # 02b, 02c: skops.io reads it
FOLD_PREDS = "preds.npz"
FOLD_HISTORY = "history.csv"
FOLD_DONE = "done.json"

FOLDS_COLUMNS = ("id", "fold", "group", "label")
ENSEMBLE_PREFIX = "ensemble: "     # 07's name for a combination of its members ("ensemble: weights")


def fold_dir(k: int) -> str:
    """Return the folder name of fold ``k``."""
    return f"fold{int(k)}"


def round_dir(r: int) -> str:
    """Return the folder name of pseudo-labelling round ``r`` (inside 06's ``<teacher>/``)."""
    return f"round{int(r)}"


def figure(name: str) -> str:
    """Return the stage-relative path of figure ``name``."""
    return f"{FIGURES}/{name}.png"
