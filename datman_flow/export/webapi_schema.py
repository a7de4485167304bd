"""What MRIQC's Web-API accepts, as its Eve/Cerberus schemas state it (nipreps/mriqcwebapi,
dockereve-master/eve-app/settings.py), and what MRIQC sends it (mriqc/interfaces/webapi.py:
the bids_meta and provenance whitelists, the fields it hashes).

A record is a document of the `T1w` or `bold` resource: the IQMs at the top level (unknown
fields refused), `bids_meta` (unknown fields allowed, known ones typed) and `provenance` (only
its own fields). Cerberus' `float` takes any number, `integer` only whole ones.
"""

from __future__ import annotations

FLOAT, INTEGER, STRING, BOOLEAN, DICT = "float", "integer", "string", "boolean", "dict"
Field = tuple[str, bool]  # (type, required)


def fields(kind: str, required: bool, names: str) -> dict[str, Field]:
    return {name: (kind, required) for name in names.split()}


def summaries(regions: str, required: str, optional: str) -> dict[str, Field]:
    """summary_<region>_<stat> for each region: `required` stats required, `optional` not."""
    out: dict[str, Field] = {}
    for region in regions.split():
        out |= fields(FLOAT, True, " ".join(f"summary_{region}_{s}" for s in required.split()))
        out |= fields(FLOAT, False, " ".join(f"summary_{region}_{s}" for s in optional.split()))
    return out


T1W_IQMS: dict[str, Field] = {
    **fields(FLOAT, True, "cjv cnr efc fber fwhm_avg fwhm_x fwhm_y fwhm_z icvs_csf icvs_gm icvs_wm inu_med "
                          "inu_range qi_1 qi_2 rpve_csf rpve_gm rpve_wm snr_csf snr_gm snr_total snr_wm snrd_csf "
                          "snrd_gm snrd_total snrd_wm spacing_x spacing_y spacing_z tpm_overlap_csf tpm_overlap_gm "
                          "tpm_overlap_wm wm2max"),
    **fields(INTEGER, True, "size_x size_y size_z"),
    **summaries("bg csf gm wm", "k mean p05 p95 stdv", "median mad n"),
}

BOLD_IQMS: dict[str, Field] = {
    **fields(FLOAT, True, "aor aqi dvars_nstd dvars_std dvars_vstd efc fber fd_mean fd_num fd_perc fwhm_avg fwhm_x "
                          "fwhm_y fwhm_z gcor gsr_x gsr_y size_t size_x size_y size_z snr spacing_tr spacing_x "
                          "spacing_y spacing_z tsnr"),
    **fields(INTEGER, False, "dummy_trs"),
    **summaries("bg fg", "k mean median mad p05 p95 stdv n", ""),
}

IQMS: dict[str, dict[str, Field]] = {"T1w": T1W_IQMS, "bold": BOLD_IQMS}

# bids_meta: the identification fields, then the metadata the schema types (others pass as they are)
BIDS_META: dict[str, Field] = {
    **fields(STRING, True, "modality subject_id"),
    **fields(STRING, False, "session_id run_id acq_id task_id AcquisitionMatrix CogAtlasID CogPOID "
                            "CoilCombinationMethod ContrastBolusIngredient ConversionSoftware "
                            "ConversionSoftwareVersion DeviceSerialNumber GradientSetType "
                            "HardcopyDeviceSoftwareVersion "
                            "InPlanePhaseEncodingDirection InstitutionAddress InstitutionName Instructions "
                            "MRAcquisitionType MRTransmitCoilSequence Manufacturer ManufacturersModelName "
                            "MatrixCoilMode ParallelAcquisitionTechnique PartialFourierDirection PatientPosition "
                            "PhaseEncodingDirection ProtocolName PulseSequenceDetails PulseSequenceType "
                            "ReceiveCoilName ScanOptions ScanningSequence SequenceName SequenceVariant "
                            "SliceEncodingDirection SoftwareVersions TaskDescription TransmitCoilName "
                            "VariableFlipAngleFlag"),
    **fields(INTEGER, False, "AccelNumReferenceLines AccelerationFactorPE EchoTrainLength FlipAngle ImagingFrequency "
                             "MagneticFieldStrength NumberOfAverages NumberOfPhaseEncodingSteps NumberShots "
                             "PercentPhaseFieldOfView PercentSampling PixelBandwidth TotalScanTimeSec"),
    **fields(FLOAT, False, "DelayTime EchoTime EffectiveEchoSpacing InversionTime MultibandAccelerationFactor "
                           "NumberOfVolumesDiscardedByScanner NumberOfVolumesDiscardedByUser "
                           "ParallelReductionFactorInPlane RepetitionTime TotalReadoutTime"),
    **fields(BOOLEAN, False, "PartialFourier"),
}
BOLD_BIDS_META: dict[str, Field] = {**BIDS_META, "TaskName": (STRING, True)}
BIDS_METAS: dict[str, dict[str, Field]] = {"T1w": BIDS_META, "bold": BOLD_BIDS_META}

PROVENANCE: dict[str, Field] = {**fields(STRING, True, "version md5sum software"), "settings": (DICT, False),
                                "mriqc_pred": (INTEGER, False), "email": (STRING, False)}
PROVENANCE_SETTINGS: dict[str, Field] = {"fd_thres": (FLOAT, False), **fields(BOOLEAN, False, "hmc_fsl testing")}

# What MRIQC sends (mriqc/interfaces/webapi.py): bids_meta and provenance keys kept, fields hashed
META_WHITELIST: tuple[str, ...] = tuple((
    "AccelNumReferenceLines AccelerationFactorPE AcquisitionMatrix CogAtlasID CogPOID CoilCombinationMethod "
    "ContrastBolusIngredient ConversionSoftware ConversionSoftwareVersion DelayTime DeviceSerialNumber EchoTime "
    "EchoTrainLength EffectiveEchoSpacing FlipAngle GradientSetType HardcopyDeviceSoftwareVersion ImageType "
    "ImagingFrequency InPlanePhaseEncodingDirection InstitutionAddress InstitutionName Instructions InversionTime "
    "MRAcquisitionType MRTransmitCoilSequence MagneticFieldStrength Manufacturer ManufacturersModelName "
    "MatrixCoilMode MultibandAccelerationFactor NumberOfAverages NumberOfPhaseEncodingSteps "
    "NumberOfVolumesDiscardedByScanner NumberOfVolumesDiscardedByUser NumberShots ParallelAcquisitionTechnique "
    "ParallelReductionFactorInPlane PartialFourier PartialFourierDirection PatientPosition PercentPhaseFieldOfView "
    "PercentSampling PhaseEncodingDirection PixelBandwidth ProtocolName PulseSequenceDetails PulseSequenceType "
    "ReceiveCoilName RepetitionTime ScanOptions ScanningSequence SequenceName SequenceVariant SliceEncodingDirection "
    "SoftwareVersions TaskDescription TaskName TotalReadoutTime TotalScanTimeSec TransmitCoilName "
    "VariableFlipAngleFlag acq_id modality run_id subject_id task_id session_id").split())
PROV_WHITELIST: tuple[str, ...] = ("version", "md5sum", "software", "settings")
HASHED: tuple[str, ...] = ("subject_id", "session_id")
MODALITIES: tuple[str, ...] = ("T1w", "bold")  # the resources datman-flow sends to (T2w: no T2w QC here)
