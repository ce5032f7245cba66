"""AllMusic tags of MSD tracks (TRACKID;genres;styles;moods;themes) on a
fixture and on ../shared/datasets/allmusic_msd."""

from realdata_fixtures import SHARED, needs_shared
from trainer.datasets import LoadReport, allmusic_msd

REAL = SHARED / "allmusic_msd" / "track_names_all.txt"

LINES = [
    "TRWMHMP128EF34293F;Pop/Rock;;;",
    "TRBOEFO128F92FC62E;Pop/Rock;Album Rock, Hard Rock, Heavy Metal;Aggressive, Brash;",
    'TRADCVS128F932D857;"[""Childrens"", Pop/Rock";"[""Childrens Pop"", Sing-Alongs";Amiable/Good-Natured;School',
    "TRWMHMP128EF34293F;Jazz;;;",
    "TRSHORT;Jazz;;;",
    "TRRSWEX12903CE4924;Vocal;;",
]


def test_fields_split_and_list_residue_stripped(tmp_path):
    path = tmp_path / "track_names_all.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    report = LoadReport()
    tracks = allmusic_msd.load(path, report=report)
    assert tracks[0] == allmusic_msd.AllMusicTrack("TRWMHMP128EF34293F", ("Pop/Rock",), (), (), ())
    assert tracks[1].styles == ("Album Rock", "Hard Rock", "Heavy Metal") and tracks[1].themes == ()
    assert tracks[2].genres == ("Childrens", "Pop/Rock") and tracks[2].styles == ("Childrens Pop", "Sing-Alongs")
    assert tracks[2].themes == ("School",)
    assert len(tracks) == 3
    assert [s.split(": ", 1)[0].rsplit(":", 1)[1] for s in report.skipped] == ["4", "5", "6"]
    assert "repeated" in report.skipped[0] and "track id" in report.skipped[1] and "got 4" in report.skipped[2]
    assert allmusic_msd.vocabulary(tracks, "genres") == {"Pop/Rock", "Childrens"}


@needs_shared("allmusic_msd", "track_names_all.txt")
def test_real_allmusic_counts():
    report = LoadReport()
    tracks = allmusic_msd.load(REAL, report=report)
    assert len(tracks) == 9499 and not report.skipped
    counts = [len(allmusic_msd.vocabulary(tracks, field)) for field in allmusic_msd.FIELDS]
    # README: 32 genres, 623 styles: counted by splitting on ',' without
    # unquoting, so 11 genres and 12 styles were quote/list residue such as
    # '"[""Childrens""' and 'Rap"'. Cleaned, the vocabularies are smaller.
    assert counts == [21, 611, 242, 123]
    naive = [set(), set(), set(), set()]
    for line in REAL.read_text(encoding="utf-8").splitlines():
        for values, field in zip(naive, line.split(";")[1:]):
            values.update(v.strip() for v in field.split(",") if v.strip())
    assert [len(v) for v in naive] == [32, 623, 242, 123]
    assert sum(1 for t in tracks if not t.genres) == 4
