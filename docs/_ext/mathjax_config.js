// MathJax settings of the documentation (loaded by docs/_ext/offline_math.py through mathjax_config_path).
// Runs after any window.MathJax object that Sphinx wrote from mathjax3_config, and adds to it.
(function () {
  var config = window.MathJax = window.MathJax || {};
  config.svg = Object.assign({fontCache: "global"}, config.svg || {});  // glyph paths stored once per page
  config.tex = config.tex || {};
  // An equation that does not typeset is an error a reader would see: make an undefined macro a real TeX
  // error instead of red text, and report every TeX error on the console, where the browser test sees it.
  config.tex.packages = {"[-]": ["noundefined", "noerrors"]};
  config.tex.formatError = function (jax, err) {
    console.error("MathJax could not typeset an equation: " + err.message);
    return jax.formatError(err);
  };
})();
