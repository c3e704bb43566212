"""The SSH door: the gateway's own SSH server, its built-in session and the relays to targets."""

import warnings

# asyncssh names cryptography's DSA types when it is imported, and cryptography 51 deprecates
# them with a warning per name: ten lines on every start that concern no setting of Hoop's.
# Ignored for asyncssh's own modules only, so a warning from anywhere else still shows.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")
