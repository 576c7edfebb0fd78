"""Open corpora (RAVDESS, CREMA-D, EmoDB) on fixture trees in their real layout and naming.

Also: the CSV loader's source columns and IEMOCAP's sentence-length report, which come with
reading audio at any rate.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from ser_pipeline.audio import read_audio
from ser_pipeline.config import registry
from ser_pipeline.corpora import prepare_corpus
from ser_pipeline.corpora import crema_d, emodb, ravdess
from ser_pipeline.corpora.csv_corpus import prepare_csv_corpus
from ser_pipeline.download import DownloadError
from ser_pipeline.errors import ConfigError, CorpusError
from ser_pipeline.manifest import read_manifest, write_manifest


def _wav_bytes(seconds, sr, channels=1, freq=220.0):
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


# ---------------------------------------------------------------- a local file server

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {}
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


# ---------------------------------------------------------------- RAVDESS

STEREO = "03-01-05-02-01-02-07.wav"  # angry, strong, actor 07 (male)


@pytest.fixture(scope="module")
def ravdess_tree(tmp_path_factory):
    """The complete 1,440-file speech corpus, as unpacked from the archive (tiny 48 kHz files)."""
    top = tmp_path_factory.mktemp("ravdess")
    root = top / "Audio_Speech_Actors_01-24"
    mono, stereo = _wav_bytes(0.05, 48000), _wav_bytes(0.25, 48000, channels=2)
    for actor in ravdess.ACTORS:
        (root / f"Actor_{actor}").mkdir(parents=True)
        for name in ravdess.expected_names(actor):
            (root / f"Actor_{actor}" / name).write_bytes(stereo if name == STEREO else mono)
    return top


def _small_ravdess(tmp_path, names=("03-01-01-01-01-01-01.wav", "03-01-02-02-02-01-01.wav",
                                    "03-01-05-01-01-02-02.wav")):
    for name in names:
        actor = name[-6:-4]
        (tmp_path / f"Actor_{actor}").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"Actor_{actor}" / name).write_bytes(_wav_bytes(0.05, 48000))
    return tmp_path


def test_ravdess_complete_corpus(ravdess_tree):
    df = prepare_corpus("ravdess", ravdess_tree)  # the download target: one folder holds Actor_XX
    assert len(df) == 1440 and df["speaker"].nunique() == 24
    assert df["label"].value_counts().to_dict() == ravdess.EXPECTED_LABELS
    assert (df["session"] == df["speaker"]).all()
    row = df.set_index("utt_id").loc[STEREO[:-4]]
    assert (row.speaker, row.gender, row.label, row.label_intensity) == ("Actor_07", "M", "angry", "strong")
    assert (row.text, row.script) == ("Kids are talking by the door", "statement01")
    assert (row.source_sr, row.source_channels, row.duration) == (48000.0, 2.0, pytest.approx(0.25))
    assert (df.drop(df.index[df.utt_id == STEREO[:-4]])["source_channels"] == 1.0).all()
    assert set(df.loc[df.speaker == "Actor_08", "gender"]) == {"F"}


def test_ravdess_stereo_48k_file_reads_as_16k_mono(ravdess_tree):
    row = prepare_ravdess_row(ravdess_tree, STEREO[:-4])
    x = read_audio(row.audio_path)
    frames = sf.info(row.audio_path).frames
    assert x.ndim == 1 and x.dtype == np.float32
    assert len(x) == math.ceil(frames * 16000 / 48000) == 4000


def prepare_ravdess_row(root, utt):
    return ravdess.prepare_ravdess(root).set_index("utt_id").loc[utt]


def test_ravdess_label_maps(ravdess_tree, caplog):
    with caplog.at_level(logging.WARNING):
        df = ravdess.prepare_ravdess(ravdess_tree, label_map="iemocap4")
    assert df["label"].value_counts().to_dict() == {"neu": 96, "hap": 192, "sad": 192, "ang": 192}
    assert "calm 192" in caplog.text and "surprised 192" in caplog.text  # what was dropped is reported
    assert set(df.loc[df.label == "neu", "label_original"]) == {"neutral"}
    merged = ravdess.prepare_ravdess(ravdess_tree, label_map="iemocap4_calm_as_neu")
    assert merged["label"].value_counts()["neu"] == 96 + 192
    custom = {lab: ("pos" if lab in ("happy", "calm") else None) for lab in ravdess.LABELS}
    assert set(ravdess.prepare_ravdess(ravdess_tree, label_map=custom)["label"]) == {"pos"}


@pytest.mark.parametrize("label_map, match", [
    ("iemocap6", "unknown"),
    ({"neutral": "neu"}, r"missing \['calm'"),
    ({**ravdess.TO_IEMOCAP4, "bored": None}, r"not labels of the corpus \['bored'\]"),
    ({lab: None for lab in ravdess.LABELS}, "every utterance"),
])
def test_bad_label_maps_are_config_errors(tmp_path, label_map, match):
    root = _small_ravdess(tmp_path)
    with pytest.raises(ConfigError, match=match):
        ravdess.prepare_ravdess(root, label_map=label_map, check_counts=False)


def test_ravdess_counts_asserted_unless_turned_off(tmp_path, caplog):
    root = _small_ravdess(tmp_path)
    with pytest.raises(CorpusError, match=r"expected 1440 files, found 3.*Actor_01: 2 of 60.*Actor_03: 0 of 60") as e:
        ravdess.prepare_ravdess(root)
    assert "03-01-01-01-01-02-01.wav" in str(e.value)  # a missing file is named
    with caplog.at_level(logging.WARNING):
        df = ravdess.prepare_ravdess(root, check_counts=False)
    assert len(df) == 3 and "check_counts is off" in caplog.text


@pytest.mark.parametrize("name, match", [
    ("03-01-09-01-01-01-01.wav", "emotion 09"),
    ("03-02-03-01-01-01-01.wav", "vocal channel 02"),
    ("01-01-03-01-01-01-01.wav", "modality 01"),
    ("03-01-01-02-01-01-01.wav", "neutral has no strong intensity"),
    ("03-01-03-03-01-01-01.wav", "intensity 03"),
    ("03-01-03-01-03-01-01.wav", "statement 03"),
    ("03-01-03-01-01-03-01.wav", "repetition 03"),
    ("03-01-03-01-01-01-25.wav", "actor 25"),
    ("03-01-03-01-01-01.wav", "not a RAVDESS file name"),
    ("3-1-3-1-1-1-1.wav", "not a RAVDESS file name"),
])
def test_ravdess_malformed_names_are_errors_naming_the_file(tmp_path, name, match):
    root = _small_ravdess(tmp_path)
    (root / "Actor_01" / name).write_bytes(_wav_bytes(0.05, 48000))
    with pytest.raises(CorpusError, match=match) as e:
        ravdess.prepare_ravdess(root, check_counts=False)
    assert name in str(e.value)


def test_ravdess_file_in_the_wrong_actor_folder(tmp_path):
    root = _small_ravdess(tmp_path)
    (root / "Actor_01" / "03-01-03-01-01-01-02.wav").write_bytes(_wav_bytes(0.05, 48000))
    with pytest.raises(CorpusError, match="actor 02 in the file name, but the file is in Actor_01"):
        ravdess.prepare_ravdess(root, check_counts=False)


def test_ravdess_unreadable_file_is_named(tmp_path):
    root = _small_ravdess(tmp_path)
    (root / "Actor_01" / "03-01-03-01-01-01-01.wav").write_bytes(b"RIFF broken")
    with pytest.raises(CorpusError, match="03-01-03-01-01-01-01.wav: cannot be read as audio"):
        ravdess.prepare_ravdess(root, check_counts=False)


def test_ravdess_manifest_round_trip_keeps_source_columns_numeric(tmp_path):
    df = ravdess.prepare_ravdess(_small_ravdess(tmp_path / "c"), check_counts=False)
    write_manifest(df, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    assert back["source_sr"].dtype == float and list(back["source_sr"]) == [48000.0] * 3
    assert list(back["label_intensity"]) == list(df["label_intensity"])


def test_download_ravdess_verifies_then_unpacks(server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("03-01-01-01-01-01-01.wav", "03-01-03-02-02-02-01.wav"):
            z.writestr(f"Actor_01/{name}", _wav_bytes(0.05, 48000))
    data = buf.getvalue()
    server.files["/rav.zip"] = data
    monkeypatch.setitem(ravdess.ARCHIVE, "size", len(data))
    monkeypatch.setitem(ravdess.ARCHIVE, "md5", hashlib.md5(data).hexdigest())
    root = ravdess.download_ravdess(tmp_path / "rav", url=server.url + "/rav.zip")
    assert root == tmp_path / "rav" / "Audio_Speech_Actors_01-24"
    assert len(ravdess.prepare_ravdess(tmp_path / "rav", check_counts=False)) == 2
    (tmp_path / "rav" / ravdess.ARCHIVE["name"]).unlink()  # archive deleted after unpacking
    assert ravdess.download_ravdess(tmp_path / "rav", url=server.url + "/gone.zip") == root  # nothing fetched
    monkeypatch.setitem(ravdess.ARCHIVE, "md5", "0" * 32)
    with pytest.raises(DownloadError, match="md5 mismatch"):
        ravdess.download_ravdess(tmp_path / "rav2", url=server.url + "/rav.zip")
    assert not (tmp_path / "rav2" / "Audio_Speech_Actors_01-24").exists()


# ---------------------------------------------------------------- CREMA-D

DEMOGRAPHICS = ('"ActorID","Age","Sex","Race","Ethnicity"\n1001,51,"Male","Caucasian","Not Hispanic"\n'
                '1002,21,"Female","Caucasian","Not Hispanic"\n1076,25,"Female","African American","Not Hispanic"\n')
CLIPS = {"1001_DFA_ANG_XX.wav": 16000, "1001_IEO_HAP_HI.wav": 16000, "1002_TSI_NEU_XX.wav": 44100,
         "1002_WSI_FEA_LO.wav": 16000, "1076_MTI_SAD_XX.wav": 16000}


def _crema_tree(root):
    (root / "AudioWAV").mkdir(parents=True)
    for name, sr in CLIPS.items():
        (root / "AudioWAV" / name).write_bytes(_wav_bytes(0.1, sr))
    (root / "VideoDemographics.csv").write_text(DEMOGRAPHICS)
    return root


def test_crema_d_partial_copy(tmp_path, caplog):
    root = _crema_tree(tmp_path / "crema")
    with caplog.at_level(logging.WARNING):
        df = prepare_corpus("crema_d", root, check_counts=False).set_index("utt_id")
    assert "1076_MTI_SAD_XX" not in df.index and "dropping 1076_MTI_SAD_XX" in caplog.text
    row = df.loc["1001_IEO_HAP_HI"]
    assert (row.speaker, row.session, row.gender, row.label, row.label_intensity) == ("1001", "1001", "M", "happy", "high")
    assert (row.text, row.script) == ("It's eleven o'clock", "IEO")
    assert df.loc["1002_TSI_NEU_XX", "gender"] == "F" and df.loc["1002_TSI_NEU_XX", "source_sr"] == 44100.0
    kept = crema_d.prepare_crema_d(root, check_counts=False, drop_known_bad=False)
    assert "1076_MTI_SAD_XX" in set(kept["utt_id"])
    mapped = crema_d.prepare_crema_d(root, check_counts=False, label_map="iemocap4")
    assert sorted(mapped["label"]) == ["ang", "hap", "neu"]  # fearful dropped, known-bad sad dropped


def test_crema_d_counts_asserted(tmp_path):
    root = _crema_tree(tmp_path / "crema")
    with pytest.raises(CorpusError, match=r"expected 7442 clips, found 5.*angry: 1 of 1271.*actors without clips"):
        crema_d.prepare_crema_d(root)


@pytest.mark.parametrize("name, match", [
    ("1001_XXX_ANG_XX.wav", "sentence XXX"),
    ("1001_DFA_SUR_XX.wav", "emotion SUR"),
    ("1001_DFA_ANG_LL.wav", "level LL"),
    ("1001_DFA_ANG.wav", "not a CREMA-D clip name"),
])
def test_crema_d_malformed_names(tmp_path, name, match):
    root = _crema_tree(tmp_path / "crema")
    (root / "AudioWAV" / name).write_bytes(_wav_bytes(0.1, 16000))
    with pytest.raises(CorpusError, match=match) as e:
        crema_d.prepare_crema_d(root, check_counts=False)
    assert name in str(e.value)


def test_crema_d_actor_missing_from_demographics(tmp_path):
    root = _crema_tree(tmp_path / "crema")
    (root / "AudioWAV" / "1050_DFA_ANG_XX.wav").write_bytes(_wav_bytes(0.1, 16000))
    with pytest.raises(CorpusError, match="1050_DFA_ANG_XX.wav: actor 1050 is not in VideoDemographics.csv"):
        crema_d.prepare_crema_d(root, check_counts=False)


def _pointer(data: bytes) -> str:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"


def _pointer_checkout(root, clips):
    (root / "AudioWAV").mkdir(parents=True)
    for name, data in clips.items():
        (root / "AudioWAV" / name).write_text(_pointer(data))
    (root / "VideoDemographics.csv").write_text(DEMOGRAPHICS)
    return root


def test_crema_d_lfs_pointers_are_not_audio(tmp_path):
    root = _pointer_checkout(tmp_path / "checkout", {"1001_DFA_ANG_XX.wav": b"x" * 100})
    with pytest.raises(CorpusError, match="1 file.*Git LFS pointers, not audio.*download_crema_d"):
        crema_d.prepare_crema_d(root, check_counts=False)


def test_download_crema_d_from_pointers(server, tmp_path, monkeypatch):
    clips = {name: _wav_bytes(0.1, 16000, freq=200 + i) for i, name in enumerate(list(CLIPS)[:3])}
    checkout = _pointer_checkout(tmp_path / "checkout", clips)
    monkeypatch.setattr(crema_d, "MEDIA_URL", server.url + "/media/{ref}/AudioWAV/{name}")
    for name, data in clips.items():
        server.files[f"/media/{crema_d.PINNED_COMMIT}/AudioWAV/{name}"] = data
    first = list(clips)[0]
    server.files[f"/media/{crema_d.PINNED_COMMIT}/AudioWAV/{first}"] = clips[first][:-2] + b"\x00\x01"

    with pytest.raises(CorpusError, match="7442"):  # a partial pointer set is refused by default
        crema_d.download_crema_d(tmp_path / "crema", checkout)
    with pytest.raises(DownloadError, match=rf"(?s)1 of 3 clips failed.*{first}: .*sha256 mismatch") as e:
        crema_d.download_crema_d(tmp_path / "crema", checkout, check_counts=False, workers=2)
    assert hashlib.sha256(clips[first]).hexdigest() in str(e.value)
    assert not (tmp_path / "crema" / "AudioWAV" / first).exists()
    assert (tmp_path / "crema" / "AudioWAV" / list(clips)[1]).read_bytes() == clips[list(clips)[1]]

    server.files[f"/media/{crema_d.PINNED_COMMIT}/AudioWAV/{first}"] = clips[first]
    target = crema_d.download_crema_d(tmp_path / "crema", checkout / "AudioWAV", check_counts=False)
    assert (target / "AudioWAV" / ".completed").is_file()
    assert (target / "VideoDemographics.csv").read_text() == DEMOGRAPHICS
    df = crema_d.prepare_crema_d(target, check_counts=False)
    assert sorted(df["utt_id"]) == sorted(n[:-4] for n in clips)


def test_crema_d_download_into_the_pointer_checkout_is_refused(tmp_path):
    checkout = _pointer_checkout(tmp_path / "checkout", {"1001_DFA_ANG_XX.wav": b"x" * 100})
    with pytest.raises(CorpusError, match="holds the pointer files themselves"):
        crema_d.download_crema_d(checkout, checkout, check_counts=False)
    assert (checkout / "AudioWAV" / "1001_DFA_ANG_XX.wav").read_text().startswith("version https://git-lfs")


def test_crema_d_malformed_pointer(tmp_path):
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid md5:abc\nsize 12\n")
    with pytest.raises(CorpusError, match="1001_DFA_ANG_XX.wav: malformed Git LFS pointer"):
        crema_d.read_pointers(tmp_path, check_counts=False)


# ---------------------------------------------------------------- EmoDB

EMODB_FILES = ["03a01Fa.wav", "03a01Nc.wav", "08b10Wa.wav", "09a05Lb.wav", "16b03Ta.wav", "13a02Ea.wav"]


def _emodb_tree(root, files=EMODB_FILES):
    (root / "wav").mkdir(parents=True)
    for name in files:
        (root / "wav" / name).write_bytes(_wav_bytes(0.1, 16000))
    (root / "erkennung.txt").write_text("not read\n")
    return root


def test_emodb_partial_copy_and_labels(tmp_path):
    root = _emodb_tree(tmp_path / "emodb")
    df = prepare_corpus("emodb", root, check_counts=False).set_index("utt_id")
    row = df.loc["03a01Fa"]
    assert (row.speaker, row.session, row.gender, row.label, row.script) == ("03", "03", "M", "happy", "a01")
    assert row.text == "Der Lappen liegt auf dem Eisschrank."
    assert df.loc["08b10Wa", "gender"] == "F" and df.loc["08b10Wa", "label"] == "angry"
    assert (df["source_sr"] == 16000.0).all() and (df["source_channels"] == 1.0).all()
    mapped = emodb.prepare_emodb(root / "wav", check_counts=False, label_map="iemocap4")
    assert mapped.set_index("utt_id")["label"].to_dict() == {"03a01Fa": "hap", "03a01Nc": "neu", "08b10Wa": "ang",
                                                            "16b03Ta": "sad"}


def test_emodb_counts_asserted(tmp_path):
    with pytest.raises(CorpusError, match=r"expected 535 utterances, found 6.*speakers without files: \['10'"):
        emodb.prepare_emodb(_emodb_tree(tmp_path / "emodb"))


@pytest.mark.parametrize("name, match", [
    ("04a01Fa.wav", "speaker 04"),
    ("03a03Fa.wav", "text a03"),
    ("03a01Xa.wav", "emotion letter X"),
    ("03a01F.wav", "not an EmoDB file name"),
])
def test_emodb_malformed_names(tmp_path, name, match):
    root = _emodb_tree(tmp_path / "emodb", EMODB_FILES + [name])
    with pytest.raises(CorpusError, match=match) as e:
        emodb.prepare_emodb(root, check_counts=False)
    assert name in str(e.value)


def _emodb_zip(files=EMODB_FILES[:2], extra=b""):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in files:
            z.writestr(f"wav/{name}", _wav_bytes(0.1, 16000))
        z.writestr("erklaerung.txt", extra or b"readme")
    return buf.getvalue()


def test_emodb_download_is_trust_on_first_use(server, tmp_path, caplog):
    first = _emodb_zip()
    server.files["/download.zip"] = first
    with caplog.at_level(logging.WARNING):
        root = emodb.download_emodb(tmp_path / "t", url=server.url + "/download.zip")
    assert "trust on first use" in caplog.text
    record = json.loads((tmp_path / "t" / emodb.TOFU_RECORD).read_text())
    assert (record["sha256"], record["size"]) == (hashlib.sha256(first).hexdigest(), len(first))
    assert len(emodb.prepare_emodb(root, check_counts=False)) == 2
    assert emodb.download_emodb(tmp_path / "t", url=server.url + "/download.zip") == root  # repeat: no-op

    # a later download that differs from the recorded one is refused, naming both digests
    server.files["/download.zip"] = _emodb_zip(extra=b"README")  # same size, other bytes
    (tmp_path / "t" / "download.zip").unlink()
    shutil.rmtree(root)
    with pytest.raises(DownloadError, match=f"sha256 mismatch.*expected {record['sha256']}"):
        emodb.download_emodb(tmp_path / "t", url=server.url + "/download.zip")
    assert not (tmp_path / "t" / "download.zip").exists()
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        emodb.download_emodb(tmp_path / "u", sha256=hashlib.sha256(first).hexdigest(),
                             url=server.url + "/download.zip")


# ---------------------------------------------------------------- shared

def test_every_open_corpus_is_a_loader_with_full_iemocap4_maps():
    for name, module in (("ravdess", ravdess), ("crema_d", crema_d), ("emodb", emodb)):
        assert registry("loader")[name] == f"ser_pipeline.corpora.{name}"
        assert set(module.TO_IEMOCAP4) == set(module.LABELS)
        assert {v for v in module.TO_IEMOCAP4.values() if v} == {"neu", "hap", "sad", "ang"}


def test_csv_corpus_records_source_rate_and_channels(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((48000, 2), np.float32), 48000)
    sf.write(tmp_path / "b.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "list.csv").write_text("path,speaker,label,start,end\na.wav,s1,neu,0.25,0.75\nb.wav,s2,ang,,\n")
    df = prepare_csv_corpus(tmp_path / "list.csv").set_index("utt_id")
    assert df.loc["a", ["source_sr", "source_channels", "duration"]].tolist() == [48000.0, 2.0, 0.5]
    assert df.loc["b", ["source_sr", "source_channels", "duration"]].tolist() == [16000.0, 1.0, 1.0]
    (tmp_path / "list.csv").write_text("path,speaker,label,start,end\na.wav,s1,neu,0.5,1.5\n")
    with pytest.raises(CorpusError, match=r"list.csv: segment ends after the end of its audio file.*line 2"):
        prepare_csv_corpus(tmp_path / "list.csv")


def test_iemocap_sentence_length_disagreement_is_reported_not_an_error(tmp_path, caplog):
    from test_corpora_iemocap import TURNS, build_tree

    from ser_pipeline.corpora.iemocap import prepare_iemocap, sentence_length_mismatches

    release = build_tree(tmp_path, TURNS)
    short = release / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_M000.wav"
    sf.write(short, np.zeros(int(0.5 * 16000), np.float32), 16000)  # annotated 1.25 s
    with caplog.at_level(logging.WARNING):
        df = prepare_iemocap(release, check_standard_counts=False)
    assert "Ses01F_impro01_M000" in set(df["utt_id"])
    assert "1 sentence wav(s) differ" in caplog.text and "Ses01F_impro01_M000: wav 0.500 s" in caplog.text
    found = sentence_length_mismatches([("u1", "u1.wav", 1.0, 1.04), ("u2", "u2.wav", 1.0, 0.9)])
    assert [(m["utt_id"], round(m["difference"], 3)) for m in found] == [("u2", -0.1)]


def test_ravdess_48k_stereo_manifest_through_feature_extraction(tmp_path):
    """The user report: a 48 kHz corpus with a stereo file now yields features for every file."""
    from ser_pipeline.features.runner import extract_corpus
    from ser_pipeline.store import FeatureStore

    root = _small_ravdess(tmp_path / "rav")
    (root / "Actor_01" / "03-01-03-01-01-01-01.wav").write_bytes(_wav_bytes(0.5, 48000, channels=2))
    df = ravdess.prepare_ravdess(root, check_counts=False)
    write_manifest(df, tmp_path / "manifest.csv")
    extract_corpus(tmp_path / "manifest.csv", tmp_path / "spec.zarr", {"extractor": "log_spectrogram"})
    store = FeatureStore(tmp_path / "spec.zarr")
    assert len(store) == 4
    frames = dict(zip(sorted(df["utt_id"]), store.load(sorted(df["utt_id"]))))
    assert frames["03-01-03-01-01-01-01"].shape[0] == 1 + (8000 - 400) // 160  # 0.5 s at 16 kHz, 25 ms / 10 ms
