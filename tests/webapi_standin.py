"""A stand-in for MRIQC's Web-API on 127.0.0.1 (http.server in a thread): `POST /api/v1/T1w` and
`/api/v1/bold` checked the way Eve's Cerberus validator checks them with the Web-API's schemas
(nipreps/mriqcwebapi, eve-app/settings.py), written out here independently of datman-flow's
copy: required fields, types (float: any number; integer: whole numbers only), unknown fields
refused except inside `bids_meta`. It answers 201 with an `_id`, or 422 with `_issues` as Eve
does, and keeps what it accepted and every Authorization header it saw."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def names(kind: str, required: bool, text: str) -> dict[str, tuple[str, bool]]:
    return {n: (kind, required) for n in text.split()}


def summary(regions: str, required: str, optional: str = "") -> dict[str, tuple[str, bool]]:
    out = {}
    for r in regions.split():
        out |= {f"summary_{r}_{s}": ("float", True) for s in required.split()}
        out |= {f"summary_{r}_{s}": ("float", False) for s in optional.split()}
    return out


T1W = {**names("float", True, "cjv cnr efc fber fwhm_avg fwhm_x fwhm_y fwhm_z icvs_csf icvs_gm icvs_wm inu_med "
                              "inu_range qi_1 qi_2 rpve_csf rpve_gm rpve_wm snr_csf snr_gm snr_total snr_wm "
                              "snrd_csf snrd_gm snrd_total snrd_wm spacing_x spacing_y spacing_z tpm_overlap_csf "
                              "tpm_overlap_gm tpm_overlap_wm wm2max"),
       **names("integer", True, "size_x size_y size_z"), **summary("bg csf gm wm", "k mean p05 p95 stdv", "median mad n")}
BOLD = {**names("float", True, "aor aqi dvars_nstd dvars_std dvars_vstd efc fber fd_mean fd_num fd_perc fwhm_avg "
                               "fwhm_x fwhm_y fwhm_z gcor gsr_x gsr_y size_t size_x size_y size_z snr spacing_tr "
                               "spacing_x spacing_y spacing_z tsnr"),
        **names("integer", False, "dummy_trs"), **summary("bg fg", "k mean median mad p05 p95 stdv n")}
BIDS = {**names("string", True, "modality subject_id"),
        **names("string", False, "session_id run_id acq_id task_id AcquisitionMatrix Manufacturer ProtocolName "
                                 "SoftwareVersions PhaseEncodingDirection InstitutionName DeviceSerialNumber "
                                 "ManufacturersModelName ScanningSequence SequenceVariant MRAcquisitionType"),
        **names("integer", False, "FlipAngle ImagingFrequency MagneticFieldStrength PixelBandwidth EchoTrainLength "
                                  "PercentPhaseFieldOfView NumberOfPhaseEncodingSteps"),
        **names("float", False, "EchoTime RepetitionTime InversionTime EffectiveEchoSpacing TotalReadoutTime "
                                "ParallelReductionFactorInPlane"),
        **names("boolean", False, "PartialFourier")}
PROVENANCE = {**names("string", True, "version md5sum software"), "settings": ("dict", False),
              "mriqc_pred": ("integer", False), "email": ("string", False)}
SETTINGS = {"fd_thres": ("float", False), "hmc_fsl": ("boolean", False), "testing": ("boolean", False)}


def type_ok(value: object, kind: str) -> bool:
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "dict": dict}[kind])


def validate(doc: object, schema: dict, allow_unknown: bool = False) -> dict[str, object]:
    """Cerberus' errors for `doc` against `schema` ({} when valid)."""
    if not isinstance(doc, dict):
        return {"_document": "must be of dict type"}
    issues: dict[str, object] = {}
    for key, (kind, required) in schema.items():
        if key not in doc:
            if required:
                issues[key] = "required field"
        elif not type_ok(doc[key], kind):
            issues[key] = f"must be of {kind} type"
    if not allow_unknown:
        issues |= {key: "unknown field" for key in doc if key not in schema}
    return issues


class WebapiStandin:
    """`with WebapiStandin(token) as api:` `api.url` + '/api/v1'; `api.accepted[modality]`."""

    def __init__(self, token: str, extra_required: dict[str, list[str]] | None = None) -> None:
        self.token, self.extra_required = token, extra_required or {}
        self.accepted: dict[str, list[dict]] = {"T1w": [], "bold": []}
        self.authorizations: list[str] = []
        self.refused: list[dict] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                standin.authorizations.append(self.headers.get("Authorization", ""))
                resource = self.path.removeprefix("/api/v1/")
                if resource not in standin.accepted:
                    return self.answer(404, {"_status": "ERR", "_error": {"code": 404, "message": "not found"}})
                if self.headers.get("Authorization") != standin.token:
                    return self.answer(401, {"_status": "ERR", "_error": {"code": 401, "message": "unauthorized"}})
                doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                issues = standin.issues(resource, doc)
                if issues:
                    standin.refused.append(doc)
                    return self.answer(422, {"_status": "ERR", "_issues": issues, "_error": {
                        "code": 422, "message": "Insertion failure: 1 document(s) contain(s) error(s)"}})
                _id = uuid.uuid4().hex[:24]
                standin.accepted[resource].append({**doc, "_id": _id})
                return self.answer(201, {"_status": "OK", "_id": _id, "_etag": uuid.uuid4().hex})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def issues(self, resource: str, doc: dict) -> dict[str, object]:
        iqms = {**(T1W if resource == "T1w" else BOLD),
                **{name: ("float", True) for name in self.extra_required.get(resource, [])}}
        schema = {**iqms, "bids_meta": ("dict", True), "provenance": ("dict", True)}
        issues = validate(doc, schema)
        bids = {**BIDS, **({"TaskName": ("string", True)} if resource == "bold" else {})}
        for key, sub, allow in (("bids_meta", bids, True), ("provenance", PROVENANCE, False)):
            found = validate(doc.get(key), sub, allow) if isinstance(doc.get(key), dict) else {}
            if found:
                issues[key] = found
        settings = doc.get("provenance", {}).get("settings")
        if isinstance(settings, dict) and validate(settings, SETTINGS):
            issues.setdefault("provenance", {})["settings"] = validate(settings, SETTINGS)  # type: ignore[index]
        return issues

    def __enter__(self) -> WebapiStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
