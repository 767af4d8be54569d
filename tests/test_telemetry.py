"""System telemetry works with or without a GPU and never raises."""

from __future__ import annotations

from workbench.train.telemetry import SystemSampler


def test_sample_has_cpu_and_ram_and_gpu_fields_only_when_present():
    sampler = SystemSampler()
    try:
        sample = sampler.sample()
    finally:
        sampler.close()
    assert 0 <= sample["cpu_percent"] <= 100 * 64
    assert 0 < sample["ram_used_gb"] <= sample["ram_total_gb"]
    if sampler.gpu_error:
        assert "gpus" not in sample
    else:
        for gpu in sample.get("gpus", []):
            assert "index" in gpu
            if "mem_used_gb" in gpu:
                assert gpu["mem_used_gb"] <= gpu["mem_total_gb"]


def test_unsupported_queries_leave_fields_out():
    sampler = SystemSampler()

    class Broken:
        def __getattr__(self, name):
            def fail(*args):
                raise RuntimeError("Not Supported")

            return fail

        NVML_TEMPERATURE_GPU = 0

    sampler._nvml = Broken()
    sampler._handles = [object()]
    sample = sampler.sample()
    assert sample["gpus"] == [{"index": 0}]
    sampler._nvml = None
    sampler._handles = []
