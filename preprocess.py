"""Video files + captions -> the precomputed dataset: `python preprocess.py input=<file> output=<dir>`."""

from ltxtune.app.preprocess import main

if __name__ == "__main__":
    main()
