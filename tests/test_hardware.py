"""predrnn.hardware: the CPU flags the benchmark reports and predrnn train's bfloat16 note reads."""

from predrnn.hardware import bfloat16_support, cpu_features, cpu_flags

AMX_XEON = "fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 amx_bf16 amx_tile"
AVX2_EPYC = "fpu vme sse sse2 avx avx2 fma sha_ni"


def _cpuinfo(tmp_path, text):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    text = f"processor\t: 0\nmodel name\t: Xeon\nflags\t\t: {AMX_XEON}\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert cpu_flags(_cpuinfo(tmp_path, text)) == set(AMX_XEON.split())


def test_cpu_flags_is_none_without_x86_flags_or_without_the_file(tmp_path):
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm bf16\nCPU implementer\t: 0x41\n"
    assert cpu_flags(_cpuinfo(tmp_path, arm)) is None
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_cpu_features_lists_the_reported_flags_in_order():
    assert cpu_features(set(AMX_XEON.split())) == ["AVX2", "AVX-512", "AVX-512 BF16", "AMX-BF16"]
    assert cpu_features(set(AVX2_EPYC.split())) == ["AVX2"]
    assert cpu_features({"fpu", "sse2"}) == []


def test_bfloat16_support_is_native_only_with_avx512_bf16_or_amx():
    assert bfloat16_support(set(AMX_XEON.split())) == "native"
    assert bfloat16_support({"avx", "avx2", "avx512_bf16"}) == "native"
    assert bfloat16_support({"avx", "avx2", "amx_bf16"}) == "native"
    assert bfloat16_support(set(AVX2_EPYC.split())) == "emulated"
    assert bfloat16_support({"fpu", "sse2"}) == "unknown"  # no AVX: not judged


def test_this_machine_is_read_consistently():
    flags = cpu_flags()
    features = cpu_features()
    if flags is None:
        assert features is None and bfloat16_support() == "unknown"
    else:
        assert features == cpu_features(flags) and bfloat16_support() == bfloat16_support(flags)


def test_predrnn_train_judges_bfloat16_by_these_flags(monkeypatch):
    import predrnn.hardware as hardware
    from predrnn.jobs.train import cpu_lacks_bfloat16

    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": set(AVX2_EPYC.split()))
    assert cpu_lacks_bfloat16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": set(AMX_XEON.split()))
    assert not cpu_lacks_bfloat16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": None)
    assert not cpu_lacks_bfloat16()  # not Linux, or not x86: nothing known, no note
