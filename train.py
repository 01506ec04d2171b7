"""Train on LTX-2: `python train.py [group=option] [key=value ...]` (see README.md)."""

from ltxtune.app.train import main

if __name__ == "__main__":
    main()
