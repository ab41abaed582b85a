"""Shared fixtures: offline hub, the real-data folder, running the CLI in a subprocess, an S3 server, one-thread search."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a skip that says why the test cannot run."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images not found at {SHARED_DATA} (the shared data folder sits beside the project)")
    return SHARED_DATA


def bench_command(home: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "bench", "--home", str(home), *arguments]


def run_bench(home: Path, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m bench` as a user would, capturing its output."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    return subprocess.run(bench_command(home, *arguments), capture_output=True, text=True, timeout=timeout, env=environment, cwd=PROJECT)


@pytest.fixture(scope="session")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free localhost port, one bucket, and the environment that points at it."""
    moto_server = pytest.importorskip("moto.server", reason="moto (the dev extra) runs the S3-compatible test server")
    boto3 = pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials).create_bucket(Bucket="bench")
    yield {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint,
           "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    server.stop()


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """The matrices are tiny: one thread keeps torch and FAISS from spin-waiting on shared, busy cores."""
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss_threads = None
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        faiss_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    if faiss_threads is not None:
        import faiss

        faiss.omp_set_num_threads(faiss_threads)


# The quick subset, `python -m pytest -m quick`: under two minutes on 2 cores, and every module's
# basics, in process: starting `python -m bench` costs seconds each time, so one test does it.
# A file maps to ALL (every test in it) or to the names of its chosen tests: a test's name takes
# all its parameters, name[parameters] one of them. tests/test_quick.py checks that every name exists.
ALL = None
QUICK: dict[str, set[str] | None] = {
    "test_adapters.py": ALL,
    "test_architecture.py": ALL,
    "test_bad_input.py": ALL,
    "test_bootstrap.py": ALL,
    "test_decode_once.py": ALL,
    "test_exact_search.py": ALL,
    "test_exif.py": ALL,
    "test_extraction_stages.py": ALL,
    "test_gallery.py": ALL,
    "test_knn_influence.py": ALL,
    "test_paircams.py": ALL,
    "test_processing.py": ALL,
    "test_query_view.py": ALL,
    "test_seeding.py": ALL,
    "test_similarity_masking.py": ALL,
    "test_store.py": ALL,
    "test_task_registry.py": ALL,
    "test_quick.py": ALL,
    "test_cli_fuzz.py": ALL,  # random command lines against a tiny home, a fixed bounded budget
    "test_ranking.py": {"test_borda_count_by_hand", "test_rank_ranges_come_from_the_resamples_and_noise_is_not_ranked"},
    "test_run_anywhere.py": {"test_a_folder_named_bench_beside_the_command_does_not_shadow_the_package[checkout]"},  # the CLI, started as users do
    "test_audit.py": {"test_quality_estimate_recovers_every_quality_pillow_saves_with", "test_subsampling_and_formats_are_read_from_the_header",
                      "test_bias_corrected_v_matches_bergsma_by_hand", "test_benjamini_hochberg_steps_up"},
    "test_calibration.py": {"test_a_knn_replicate_is_the_gap_knn_influence_prints_for_its_images"},
    "test_depth.py": {"test_depth_names_parse_expand_and_refuse_with_the_valid_depths", "test_the_depth_view_builds_from_synthetic_cells"},
    "test_docs.py": {"test_every_page_is_in_the_navigation", "test_the_readme_is_short_and_links_to_pages_that_exist"},
    "test_encoder_inputs.py": {"test_an_encoders_file_that_is_a_device_is_refused_without_reading_it", "test_a_set_that_includes_itself_is_one_line"},
    "test_encoders.py": {"test_random_control_is_seeded_and_not_the_real_weights", "test_paper_preprocessing_resizes_shorter_side_then_centre_crops",
                         "test_unknown_encoder_suggests_close_names", "test_spec_is_frozen_and_names_follow_family_arch_tag",
                         "test_encoder_sets_expand_in_order_and_a_file_may_declare_its_own"},
    "test_fetch.py": {"test_bad_options_end_in_one_line"},
    "test_hardening.py": {"test_leaderboard_of_an_empty_home_says_so"},
    "test_measures.py": {"test_knn_gap_is_knn_influence_gap_and_resamples_of_all_ones_give_it_back",
                         "test_weighted_and_permuted_knn_gap_equals_a_brute_force_vote", "test_paircams_gap_is_the_paircams_task_gap",
                         "test_similarity_shifts_are_the_similarity_task_shifts", "test_probe_accuracies_are_plain_accuracies",
                         "test_label_probe_holds_its_level_on_tiny_classes_and_a_constant_probe_is_never_marked",
                         "test_a_unit_is_resampled_whole", "test_adjust_by_hand",
                         "test_a_board_marks_what_passes_benjamini_hochberg_and_exports_both_p_values",
                         "test_the_trace_ranking_counts_only_adjusted_marks_in_the_trace_direction",
                         "test_groups_name_units_and_unnamed_images_stay_their_own", "test_a_bad_groups_file_is_refused_by_name"},
    "test_mitigate.py": {"test_the_planted_gap_is_marked_and_the_control_is_not",
                        "test_each_method_removes_the_trace_it_was_fitted_on_at_little_semantic_cost[normalise]"},
    "test_probes.py": {"test_trainer_matches_torch_linear_sgd_and_cross_entropy", "test_learning_rate_schedules",
                       "test_label_draws_and_holdout_are_keyed_by_image_id", "test_missing_optuna_says_which_extra_to_install"},
    "test_progress.py": {"test_a_log_gets_a_line_per_interval_with_rate_and_time_left_and_a_last_line_with_totals",
                         "test_a_stage_that_stops_says_how_far_it_got_and_its_note", "test_a_terminal_gets_the_bar_and_no_log_lines",
                         "test_interval_and_clock"},
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests QUICK names with `quick`."""
    for item in items:
        chosen = QUICK.get(item.path.name, set())
        if chosen is ALL or item.name in chosen or getattr(item, "originalname", item.name) in chosen:
            item.add_marker(pytest.mark.quick)
