// zoft._core: the engine's classes for the Python package (python/src/zoft/__init__.py wraps
// them in the public API). zoft::Error arrives in Python as zoft.Error (a RuntimeError) with the
// one-line message the CLI prints after "zoft: error: ".
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "host_array.h"
#include "model.h"
#include "text/tokenizer.h"

namespace py = pybind11;

namespace zoft::python {

void bind_train(py::module_& m);

namespace {

void bind_tokenizer(py::module_& m) {
  using text::Tokenizer;
  py::class_<Tokenizer>(m, "Tokenizer")
      .def_static("from_file", &Tokenizer::from_file, py::arg("path"))
      .def("encode", &Tokenizer::encode, py::arg("text"), py::arg("add_special_tokens") = true)
      .def("decode", &Tokenizer::decode, py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def(
          "token_bytes",
          [](const Tokenizer& t, int32_t id) { return py::bytes(t.token_bytes(id)); },
          py::arg("id"))
      .def("is_special", &Tokenizer::is_special, py::arg("id"))
      .def_property_readonly("bos_id", &Tokenizer::bos_id)
      .def_property_readonly("eos_id", &Tokenizer::eos_id)
      .def_property_readonly("pad_id", &Tokenizer::pad_id)
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size);
}

}  // namespace

}  // namespace zoft::python

PYBIND11_MODULE(_core, m) {
  m.doc() = "zoft engine bindings (use the zoft package)";
  // zoft::Error, and what else the CLI reports as "zoft: error: <what>" (a library's
  // std::exception), become zoft.Error; out of memory stays MemoryError.
  static py::exception<zoft::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::builtin_exception&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });
  zoft::python::bind_host_array(m);
  zoft::python::bind_tokenizer(m);
  zoft::python::bind_model(m);
  zoft::python::bind_train(m);
}
