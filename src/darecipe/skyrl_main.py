"""Entry point of the `skyrl` stage-3 backend (cluster only): register `env_class: deepanalyze`, then run
skyrl-train's own Hydra entry point with the overrides `darecipe.skyrl_args` generated."""


def main() -> None:
    from darecipe.skyrl_env import register

    register()
    from skyrl_train.entrypoints.main_base import main as skyrl_main  # skyrl-train, in envs/skyrl.yaml

    skyrl_main()


if __name__ == "__main__":
    main()
