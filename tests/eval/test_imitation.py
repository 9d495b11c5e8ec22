"""Which corruptions each augmentation policy imitates (the split of mCE into all / unimitated)."""

import pytest

from supcon.data import POLICIES
from supcon.eval import imitation
from supcon.eval.corruptions import CORRUPTIONS


def test_the_policies_are_the_data_packages():
    assert imitation.POLICIES == POLICIES


def test_simaugment_on_grey_28px_imitates_the_photometric_corruptions():
    assert set(imitation.imitated_by("simaugment", channels=1, image_size=28)) == {
        "brightness", "contrast", "fog", "saturate"}
    # its Gaussian blur is on from 64 px only
    big = imitation.imitated_by("simaugment", channels=3, image_size=224)
    assert {"gaussian_blur", "defocus_blur"} <= set(big) and "saturation" in big["saturate"]


def test_crop_flip_imitates_nothing_and_the_rest_is_unimitated():
    assert imitation.imitated_by("crop-flip") == {} and imitation.imitated_by("none") == {}
    rest = imitation.unimitated(["simaugment", "crop-flip"], channels=1, image_size=28)
    assert rest == [c for c in CORRUPTIONS if c not in ("brightness", "contrast", "fog", "saturate")]
    assert len(rest) == 12


def test_stacked_randaugment_is_the_union_and_reasons_are_kept_per_policy():
    stacked = imitation.imitated_by("stacked-randaugment", channels=1, image_size=28)
    union = {**imitation.imitated_by("randaugment"), **imitation.imitated_by("simaugment")}
    assert set(stacked) == set(union)
    both = imitation.imitated(["simaugment", "autoaugment"], channels=1, image_size=28)
    assert set(both["contrast"]) == {"simaugment", "autoaugment"} and set(both["gaussian_blur"]) == {"autoaugment"}
    assert list(both) == [c for c in CORRUPTIONS if c in both]  # table order


@pytest.mark.parametrize("args, match", [(("randaug",), "unknown augmentation policy"),
                                         (("simaugment", 2), "channels must be 1 or 3")])
def test_bad_arguments(args, match):
    policy, *channels = args
    with pytest.raises(ValueError, match=match):
        imitation.imitated_by(policy, channels=channels[0] if channels else 1)
