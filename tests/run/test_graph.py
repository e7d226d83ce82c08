"""The series as jobs for the Ray executor: 01 first, each trained stage's folds as jobs of
their own and then its notebook (the gather), 06 after its teachers, 07 after everything;
finished work has no job."""
from cellclf_utils.config import STAGES
from cellclf_utils.run import graph

SERIES = list(STAGES)
FOLDS = {s: 2 for s in SERIES}


def jobs(teacher="02_baseline_cnn", finished=(), done=()):
    return graph.jobs(SERIES, FOLDS, teacher, lambda s: s in finished, lambda s, k: (s, k) in done)


def by_key(js):
    return {j.key: j for j in js}


def test_trained_stages_run_their_folds_as_jobs_and_gather_them_in_their_notebook():
    js = by_key(jobs())
    for stage in ("02_baseline_cnn", "03_xception", "04_vgg16", "05_inception_resnet_v2"):
        assert js[f"{stage}/fold0"].needs == js[f"{stage}/fold1"].needs == ("01_eda_colour",)
        assert js[stage].needs == (f"{stage}/fold0", f"{stage}/fold1")
    # the classical stage, the probe, pseudo-labelling and the ensemble are one job each
    assert not [k for k in js if "/" in k and k.split("/")[0] in ("02b_classical", "02c_frozen_probe",
                                                                  "06_pseudo_labelling", "07_ensemble")]
    assert js["01_eda_colour"].needs == ()


def test_pseudo_labelling_waits_for_its_teacher_and_the_ensemble_for_everything():
    js = by_key(jobs())
    assert js["06_pseudo_labelling"].needs == ("01_eda_colour", "02_baseline_cnn")
    assert js["07_ensemble"].needs == tuple(SERIES[:-1])
    best = by_key(jobs(teacher=""))  # the best trained stage teaches: 06 waits for each of them
    assert best["06_pseudo_labelling"].needs == ("01_eda_colour", "02_baseline_cnn", "03_xception", "04_vgg16",
                                                 "05_inception_resnet_v2")


def test_every_job_comes_after_the_jobs_it_needs():
    seen = set()
    for j in jobs():
        assert set(j.needs) <= seen, j
        seen.add(j.key)


def test_finished_work_has_no_job_and_nothing_waits_for_it():
    js = by_key(jobs(finished={"01_eda_colour", "03_xception"}, done={("04_vgg16", 0), ("02_baseline_cnn", 0),
                                                                     ("02_baseline_cnn", 1)}))
    assert "01_eda_colour" not in js and not [k for k in js if k.startswith("03_xception")]
    assert "04_vgg16/fold0" not in js and js["04_vgg16"].needs == ("04_vgg16/fold1",)
    assert js["04_vgg16/fold1"].needs == ()
    # every fold finished: the stage's notebook gathers them as soon as it may start
    assert js["02_baseline_cnn"].needs == ()
    assert js["07_ensemble"].needs == tuple(s for s in SERIES[:-1] if s not in ("01_eda_colour", "03_xception"))


def test_only_chosen_stages_are_waited_for():
    js = by_key(graph.jobs(["04_vgg16", "07_ensemble"], FOLDS, "", lambda s: False, lambda s, k: False))
    assert js["04_vgg16/fold0"].needs == ()
    assert js["07_ensemble"].needs == ("04_vgg16",)


def test_a_distilled_fine_tune_waits_for_its_teachers_of_this_run():
    js = by_key(graph.jobs(SERIES, FOLDS, "", lambda s: False, lambda s, k: False,
                           {"04_vgg16": "02c_frozen_probe,03_xception,runs/other/02c_frozen_probe"}))
    assert js["04_vgg16/fold0"].needs == ("01_eda_colour", "02c_frozen_probe", "03_xception")
    assert js["05_inception_resnet_v2/fold0"].needs == ("01_eda_colour",)  # its own distill is off
