"""``python -m donor_sync`` runs the command line."""

from donor_sync.cli import main

if __name__ == "__main__":
    main()
