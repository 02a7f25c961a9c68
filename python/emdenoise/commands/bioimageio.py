"""``emdenoise export-bioimageio`` and ``emdenoise import-bioimageio``: bioimage.io model packages.

Both verbs live here and are registered by one loader (:mod:`emdenoise.verbs`); the
bioimage.io libraries are imported only when a verb runs (:mod:`emdenoise.bioimageio`).
"""

from __future__ import annotations

from pathlib import Path

EXPORT_HELP = "write a model as a bioimage.io package (rdf.yaml, ONNX, test data); needs '.[bioimageio]'"
IMPORT_HELP = "install a bioimage.io ONNX model package into the user model folder"


def register(subparsers) -> None:
    p = subparsers.add_parser("export-bioimageio", help=EXPORT_HELP,
                              description="Export an installed onnx denoiser as a bioimage.io model package.")
    p.add_argument("model", help="model id (see 'emdenoise models')")
    p.add_argument("-o", "--output", type=Path, required=True, help="package folder to create")
    p.add_argument("--zip", type=Path, metavar="FILE", help="also write the package as this zip file")
    p.add_argument("--gain", type=float, default=1.0,
                   help="counts models: detector counts per electron fixed into the package (default: 1)")
    p.add_argument("--offset", type=float, default=0.0,
                   help="counts models: detector reading at zero electrons fixed into the package (default: 0)")
    p.add_argument("--test", action="store_true", help="then run bioimageio.core's test on the package (offline)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package folder or zip")
    p.set_defaults(func=run_export)

    q = subparsers.add_parser("import-bioimageio", help=IMPORT_HELP,
                              description="Install a bioimage.io ONNX model (folder, rdf.yaml or zip) as an "
                                          "emdenoise model; needs '.[bioimageio]'.")
    q.add_argument("package", type=Path, help="bioimage.io package folder, its rdf.yaml, or its zip")
    q.add_argument("--id", dest="model_id", help="id of the installed model (default: bioimageio-<package id>)")
    q.add_argument("--modality", help="modality on the card: tem, hrtem, stem (default: the package's, else any)")
    q.add_argument("--models-dir", type=Path,
                   help="install here instead of the user model folder ($EMDENOISE_MODELS or the platform's)")
    q.add_argument("--overwrite", action="store_true", help="replace an installed model with the same id")
    q.set_defaults(func=run_import)


def run_export(args) -> int:
    from emdenoise.bioimageio import check_package, export_package

    rdf = export_package(args.model, args.output, gain=args.gain, offset=args.offset, zip_path=args.zip,
                         overwrite=args.overwrite)
    print(f"bioimage.io package: {rdf.parent} (description {rdf.name})")
    if args.zip:
        print(f"zip: {args.zip}")
    if args.test:
        passed, failed = check_package(rdf)
        print("bioimageio.core test: " + ("passed" if passed else "FAILED"))
        for line in failed:
            print(f"  {line}")
        return 0 if passed else 1
    return 0


def run_import(args) -> int:
    from emdenoise.bioimageio import import_package

    folder = import_package(args.package, model_id=args.model_id, models_dir=args.models_dir,
                            modality=args.modality, overwrite=args.overwrite)
    print(f"installed model {folder.name} in {folder}; run it with: emdenoise denoise FILE --model {folder.name}")
    return 0
