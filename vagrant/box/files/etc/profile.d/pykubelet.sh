# pykubelet's venv (dependencies baked into the box; provisioning adds pykubelet itself)
case ":$PATH:" in *:/opt/pykubelet/venv/bin:*) ;; *) PATH="$PATH:/opt/pykubelet/venv/bin" ;; esac
