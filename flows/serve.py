"""Serve the `augment-and-verify/local` deployment from this repository.

    python -m flows.serve            # keeps running; start runs with
    prefect deployment run augment-and-verify/local --param profile=demo --watch
"""

from flows.augment_and_verify import augment_and_verify

if __name__ == "__main__":
    augment_and_verify.serve(name="local", parameters={"profile": "demo"}, description="faceaug on this machine")
