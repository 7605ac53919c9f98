"""JupyterHub for the course on one machine; `course_utils.grading.hub` writes the settings this file reads.

Accounts: the launcher's system users, logging in with one shared trial password (DummyAuthenticator). For a
class, replace the authenticator with the institution's login, e.g. OAuth (pip install oauthenticator):
    c.JupyterHub.authenticator_class = "generic-oauth"  # with c.GenericOAuthenticator.client_id etc.
keeping c.Authenticator.allowed_users / admin_users, and system users of the same names.
"""

import json
import os
import pwd

from course_utils.grading.hub import HubSettings, user_env

c = get_config()  # noqa: F821 (provided by traitlets when JupyterHub loads this file)
with open(os.environ["COURSE_HUB_SETTINGS"]) as f:
    settings = HubSettings(**json.load(f))

c.JupyterHub.bind_url = settings.url
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.hub_port}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [settings.proxy]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.cleanup_servers = True
c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"  # in the hub's private folder of the state
c.JupyterHub.cookie_secret_file = "jupyterhub_cookie_secret"

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings.password
c.Authenticator.allowed_users = {settings.instructor, *settings.students}
c.Authenticator.admin_users = {settings.instructor}

# The launcher (and its test) acts through the hub's API with this token: user tokens, users' servers.
c.JupyterHub.services = [{"name": "course-launcher", "api_token": settings.api_token}]
c.JupyterHub.load_roles = [{"name": "course-launcher", "services": ["course-launcher"],
                            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"]}]

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.env_keep = []  # nothing of root's environment reaches a user's server
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
c.Spawner.args = ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                  "--LabApp.extension_manager=readonly"]


def per_user(spawner):
    """Students run the bundle's environment in their home; the instructor runs `course` in their course."""
    name = spawner.user.name
    spawner.environment = user_env(settings, name)
    role = "instructor" if name == settings.instructor else "student"
    spawner.cmd = [str(settings.path(f"{role}-env", "bin", "python")), "-m", "jupyterhub.singleuser"]
    home = pwd.getpwnam(name).pw_dir
    spawner.notebook_dir = str(settings.course_root()) if role == "instructor" else home


c.Spawner.pre_spawn_hook = per_user
